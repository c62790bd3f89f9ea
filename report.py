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
from labench.errors import run_cli
from labench.identity import metric_variants
from labench.models import DEFAULT_MODEL
from labench.runtime import RUNTIMES
from saliency import PAPER_ORDER


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--weights", default="default", help="'default', 'random', a weights name or a checkpoint")
    parser.add_argument("--data_dir", default="data", help="folder with img_batch.pt and label_batch.pt")
    parser.add_argument("--images", type=int, default=64, help="the first N evaluation images")
    parser.add_argument("--variant_images", type=int, default=None,
                        help="the metric variants score only the first V images (default: all N)")
    parser.add_argument("--methods", nargs="+", default=None, help=f"default: all twelve ({' '.join(PAPER_ORDER)})")
    parser.add_argument("--variants", nargs="*", default=list(metric_variants()),
                        help=f"metric variants to run, of {', '.join(metric_variants())} (none: --variants)")
    parser.add_argument("--spatial_range", type=int, default=20)
    parser.add_argument("--max_iter", type=int, default=20)
    parser.add_argument("--sampling_times", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="the metric's forward passes on a CPU: PyTorch, or OpenVINO / ONNX Runtime (eval.py "
                             "--runtime: the same curves to float rounding, checked per run; PyTorch where it cannot)")
    parser.add_argument("--out", default="report", help="folder of everything the report writes")
    parser.add_argument("--tables_only", action="store_true",
                        help="compute nothing: the tables and README from what --out already holds")
    flags = parser.parse_args(argv)
    report.run(report.Request(
        model=flags.model, weights=flags.weights, data_dir=flags.data_dir, images=flags.images,
        variant_images=flags.variant_images, methods=tuple(flags.methods or ()), variants=tuple(flags.variants),
        settings=(("spatial_range", flags.spatial_range), ("max_iter", flags.max_iter),
                  ("sampling_times", flags.sampling_times)),
        seed=flags.seed, device=flags.device, runtime=flags.runtime, out=flags.out, tables_only=flags.tables_only))


if __name__ == "__main__":
    run_cli(main)
