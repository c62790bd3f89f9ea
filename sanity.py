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

from labench import sanity
from labench.errors import run_cli
from labench.identity import FLAG_MODE_NAMES, SANITY, declaration
from labench.models import DEFAULT_MODEL
from labench.randomisation import CASCADE_STAGES
from saliency import PAPER_ORDER

OTHER_MODES = [name for name in FLAG_MODE_NAMES if declaration(name).group != SANITY]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--weights", default="default", help="'default', 'random', a weights name or a checkpoint")
    parser.add_argument("--data_dir", default="data", help="folder with img_batch.pt and label_batch.pt")
    parser.add_argument("--images", type=int, default=8, help="the first N evaluation images")
    parser.add_argument("--methods", nargs="+", default=None, help=f"default: all twelve ({' '.join(PAPER_ORDER)})")
    parser.add_argument("--stages", type=int, nargs="+", default=None,
                        help=f"cascade stages, of 1..{CASCADE_STAGES} (default: all)")
    parser.add_argument("--spatial_range", type=int, default=20)
    parser.add_argument("--max_iter", type=int, default=20)
    parser.add_argument("--sampling_times", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0,
                        help="of the randomised parameters, the other classes and the methods' own draws")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch_size", type=int, default=None, help="images per call (default: each method's)")
    parser.add_argument("--figure_image", type=int, default=0, help="the image the figure shows (below --images)")
    parser.add_argument("--out", default="sanity", help="folder of everything the checks write")
    for name in OTHER_MODES:
        parser.add_argument(f"--{name}", action="store_true", help=declaration(name).help)
    flags = parser.parse_args(argv)
    sanity.run(sanity.Request(
        model=flags.model, weights=flags.weights, methods=tuple(flags.methods or ()), images=flags.images,
        stages=tuple(flags.stages or ()), data_dir=flags.data_dir, device=flags.device, seed=flags.seed,
        batch_size=flags.batch_size, settings=(("spatial_range", flags.spatial_range), ("max_iter", flags.max_iter),
                                               ("sampling_times", flags.sampling_times)),
        modes=tuple(name for name in OTHER_MODES if getattr(flags, name)), figure_image=flags.figure_image,
        out=flags.out))


if __name__ == "__main__":
    run_cli(main)
