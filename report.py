"""The whole benchmark for one model in one command: maps of every method, Insertion and Deletion
under the paper's metric and its variants, tables with intervals, significance and robustness.

    python report.py --model efficientnet_lite0 --images 64 --variant_images 32 --out report
    make report MODEL=efficientnet_lite0 IMAGES=64 VARIANT_IMAGES=32 OUT=report

Needs the evaluation set in --data_dir (python generate_pt.py first). Writes under --out:
attributions/, scores/, results.csv, tables/ (insertion/deletion .md/.tex, statistics.md/.tex/.csv,
robustness.md and robustness_<model>.png, la_grid files) and README.md, which says what was run
(versions, seed, images, device, seconds per stage). Resumable: rerun the same command.
"""
import argparse

from labench import report
from labench.cli import add_benchmark_arguments, benchmark_fields
from labench.errors import run_cli
from labench.identity import metric_variants
from labench.runtime import RUNTIMES


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_arguments(parser, images=64)
    parser.add_argument("--variant_images", type=int, default=None,
                        help="the metric variants score only the first V images (default: all N)")
    parser.add_argument("--variants", nargs="*", default=list(metric_variants()),
                        help=f"metric variants to run, of {', '.join(metric_variants())} (none: --variants)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="the metric's forward passes on a CPU: PyTorch, or OpenVINO / ONNX Runtime (eval.py "
                             "--runtime: the same curves to float rounding, checked per run; PyTorch where it cannot)")
    parser.add_argument("--out", default="report", help="folder of everything the report writes")
    parser.add_argument("--tables_only", action="store_true",
                        help="compute nothing: the tables and README from what --out already holds")
    flags = parser.parse_args(argv)
    report.run(report.Request(**benchmark_fields(flags), variant_images=flags.variant_images,
                              variants=tuple(flags.variants), runtime=flags.runtime, out=flags.out,
                              tables_only=flags.tables_only))


if __name__ == "__main__":
    run_cli(main)
