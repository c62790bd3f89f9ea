"""Sanity checks (Adebayo et al., NeurIPS 2018): does each method's map depend on the model?

    python sanity.py --model efficientnet_lite0 --images 8 --out sanity
    python sanity.py --methods sm ig eg --images 2 --stages 1 5 --out sanity_smoke

For each method: its maps of the first N images on the trained model, on the model whose
parameters are randomised from the top down (cascade stages 1..5: the head, growing groups of
the last blocks, every layer; --stages picks some) and for a randomly drawn other class of each
image (random logit), each compared with the trained model's map per image: Spearman rank
correlation of |map| and of the signed map, SSIM of the normalised heatmaps, with bootstrap 95%
intervals over images. docs/PROTOCOL.md "Sanity checks" has the details.

Needs the evaluation set in --data_dir (python generate_pt.py first). Writes under --out:
attributions/ (the maps, named with the modes -cascade<k> and -random_logit), sanity.md / .tex /
.csv (a table per measure: method x check), per_image.csv and <model>_sanity.png (a row per
method, a column per check). Resumable: rerun the same command; only missing maps are computed.
"""
import argparse

from labench.flows import sanity
from labench.flows.cli import HelpFormatter, add_benchmark_arguments, benchmark_fields
from labench.errors import run_cli
from labench.spec.identity import FLAG_MODE_NAMES, SANITY, declaration
from labench.nets.randomisation import CASCADE_STAGES

OTHER_MODES = [name for name in FLAG_MODE_NAMES if declaration(name).group != SANITY]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_benchmark_arguments(parser, images=8,
                            seed_help="of the randomised parameters, the other classes and the methods' own draws")
    parser.add_argument("--stages", type=int, nargs="+", default=None,
                        help=f"cascade stages, of 1..{CASCADE_STAGES} (default: all)")
    parser.add_argument("--batch_size", type=int, default=None, help="images per call (default: each method's)")
    parser.add_argument("--figure_image", type=int, default=0, help="the image the figure shows (below --images)")
    parser.add_argument("--out", default="sanity", help="folder of everything the checks write")
    for name in OTHER_MODES:
        parser.add_argument(f"--{name}", action="store_true", help=declaration(name).help)
    flags = parser.parse_args(argv)
    sanity.run(sanity.Request(**benchmark_fields(flags), stages=tuple(flags.stages or ()),
                              batch_size=flags.batch_size, figure_image=flags.figure_image, out=flags.out,
                              modes=tuple(name for name in OTHER_MODES if getattr(flags, name))))


if __name__ == "__main__":
    run_cli(main)
