"""The whole benchmark for one model or several in one command: maps of every method, Insertion
and Deletion under the paper's metric and its variants, the stochastic methods under other seeds,
tables with intervals, significance, effect sizes, ranks, robustness, seed spread, the correctly
classified images and, for several models, their agreement (docs/PROTOCOL.md "Statistics").

    python report.py --model efficientnet_lite0 --images 64 --variant_images 32 --out report
    python report.py --model efficientnet_lite0 efficientnet_lite1 --seed_reruns 1 2 --seed_images 16
    make report MODEL="efficientnet_lite0 efficientnet_lite1" IMAGES=64 VARIANT_IMAGES=32 SEED_RERUNS="1 2"

Needs the evaluation set in --data_dir (python generate_pt.py first). Writes under --out:
attributions/, scores/, results.csv (seed_reruns.csv for the reruns), tables/ (insertion/deletion
.md/.tex, statistics.md/.tex/.csv, headlines.md, ranks.md, robustness.md and
robustness_<model>.png, seeds.md, correct.md, models.md, la_grid files) and README.md, which says
what was run (versions, seed, images, device, seconds per stage). Resumable: rerun the same command.
"""
import argparse

from labench.flows import report
from labench.flows.cli import HelpFormatter, add_benchmark_arguments, benchmark_fields
from labench.errors import run_cli
from labench.spec.identity import metric_variants
from labench.nets.runtime import RUNTIMES


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_benchmark_arguments(parser, images=64, several_models=True)
    parser.add_argument("--variant_images", type=int, default=None,
                        help="the metric variants score only the first V images (default: all N)")
    parser.add_argument("--variants", nargs="*", default=list(metric_variants()),
                        help=f"metric variants to run, of {', '.join(metric_variants())} (none: --variants)")
    parser.add_argument("--seed_reruns", nargs="*", type=int, default=[],
                        help="other seeds for the methods whose maps depend on the seed (e.g. 1 2): their spread "
                             "and whether a verdict changes with it (tables/seeds.md)")
    parser.add_argument("--seed_images", type=int, default=16, help="the seed reruns on the first S images")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="the metric's forward passes (eval.py --runtime): auto = on a CPU OpenVINO or ONNX "
                             "Runtime when installed, the same curves to float rounding, checked per run; torch = "
                             "PyTorch")
    parser.add_argument("--out", default="report", help="folder of everything the report writes")
    parser.add_argument("--tables_only", action="store_true",
                        help="compute nothing: the tables and README from what --out already holds")
    parser.add_argument("--results", default=None, metavar="DOCUMENT",
                        help="also write the README into DOCUMENT between its two marker lines, keeping its prose "
                             "(docs/RESULTS.md; a new file holds the report alone)")
    flags = parser.parse_args(argv)
    report.run(report.Request(**benchmark_fields(flags, several_models=True), variant_images=flags.variant_images,
                              variants=tuple(flags.variants), runtime=flags.runtime, out=flags.out,
                              tables_only=flags.tables_only, seed_reruns=tuple(dict.fromkeys(flags.seed_reruns)),
                              seed_images=flags.seed_images, results=flags.results))


if __name__ == "__main__":
    run_cli(main)
