"""Figures: heatmaps, the paper's heatmap grid, and Insertion/Deletion curves.

    python plot.py heatmaps --model efficientnet_lite0 --attr_method la --max_iter 10 --sampling_times 10
    python plot.py grid     --model efficientnet_lite0 --indices 0 1 2 3
    python plot.py curves   --model efficientnet_lite0

heatmaps  one method: each image (titled with its label's class name) beside its heatmap,
          -> figures/<stem>_heatmaps.png. Without a subcommand plot.py does this, as before.
grid      the paper's figure: one row per chosen image, the image (titled with the model's
          predicted class; --no-model: the label) followed by every method that has a map on
          disk for that model, in the paper's order; methods without one are left out and
          named in a note. -> figures/<model>_grid.png
curves    the Insertion and Deletion curves (mean over images) of every scores file of the
          model, all LA settings included, with the AUCs in the legend. -> figures/<model>_curves.png

The heatmap is the published one: mean over channels, clipped to the 80th..99th percentile,
scaled to [0, 1], shown in gray (not transposed, docs/DEVIATIONS.md item 7). --mode overlay
draws it in colour over the image; --mode signed shows the channel mean divided by its 99th
percentile of absolute values, clipped to [-1, 1], red positive and blue negative.

LA in the grid: --spatial_range/--max_iter/--sampling_times name one file; options left out
match any value. Among the LA files that match, the grid takes the paper's default (20, 20, 20)
if present, else the setting with the most work (max_iter * sampling_times), then the
spatial_range closest to 20, then the smallest values (the rule tables.py uses too).

Output: .png or .pdf by the --out suffix; --size W H (inches) and --dpi. No display is needed.
The figure functions live in labench.present.figures (`from plot import plot` still gives the overlay).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labench.compute.data import class_names, load_dataset
from labench.errors import UserError, run_cli
from labench.flows.cli import HelpFormatter
from labench.present.figures import MODES, build_curves, build_grid, heatmap_pairs, load_maps, plot, save_figure  # noqa: F401
from labench.spec.identity import OutputId, model_tag
from labench.nets.models import weights_tag
from saliency import PAPER_ORDER


def add_model_and_output(parser, dpi):
    parser.add_argument("--model", default="efficientnet_lite0", help="the model whose outputs to draw")
    parser.add_argument("--weights", default="default", help="its weights, as generate_attributions.py took them")
    parser.add_argument("--out", default=None, help="output file, .png or .pdf")
    parser.add_argument("--size", type=float, nargs=2, metavar=("W", "H"), default=None, help="figure size in inches")
    parser.add_argument("--dpi", type=int, default=dpi, help="resolution of a .png")


def add_la_setting(parser, default):
    for flag in ("--spatial_range", "--max_iter", "--sampling_times"):
        parser.add_argument(flag, type=int, default=default,
                            help="LA's setting whose maps to draw" + ("" if default is not None else
                                                                      " (default: 20/20/20 if present, else the most work)"))


def heatmaps_arguments(parser):
    add_model_and_output(parser, 100)
    parser.add_argument("--attr_method", default="la", help="the method (or file.py:function of your own)")
    add_la_setting(parser, 20)
    parser.add_argument("--maps_dir", "--attr_prefix", dest="attr_prefix", default="attributions", metavar="DIR",
                        help="folder of the maps")
    parser.add_argument("--data_dir", default="data", help="folder of the cached images")
    parser.add_argument("--images", "--count", dest="count", type=int, default=6, metavar="N",
                        help="the first N images")
    parser.add_argument("--mode", choices=MODES, default="gray",
                        help="gray: the published heatmap; overlay: in colour over the image; signed: keeps the sign")


def heatmaps(args, size):
    params = {"spatial_range": args.spatial_range, "max_iter": args.max_iter, "sampling_times": args.sampling_times}
    out_id = OutputId.make(args.model, args.attr_method, weights_tag(args.weights), params)
    maps = load_maps(Path(args.attr_prefix) / out_id.maps_file)
    images, labels = load_dataset(args.data_dir)
    count = min(args.count, len(maps), len(images))
    if count < 1:
        raise UserError("--count must be at least 1")
    names = class_names()
    titles = [f"{i}: {names.get(int(labels[i]), labels[i])}" for i in range(count)]
    out = Path(args.out or f"figures/{out_id.stem}_heatmaps.png")
    heatmap_pairs(images[:count].numpy(), maps[:count], titles, out, dpi=args.dpi, mode=args.mode, size=size)
    return out


def grid_arguments(parser):
    add_model_and_output(parser, 150)
    add_la_setting(parser, None)
    parser.add_argument("--maps_dir", "--attr_prefix", dest="attr_prefix", default="attributions", metavar="DIR",
                        help="folder of the maps")
    parser.add_argument("--data_dir", default="data", help="folder of the cached images")
    parser.add_argument("--indices", type=int, nargs="+", default=[0, 1, 2, 3], help="image indices (rows)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"only these ({', '.join(PAPER_ORDER)}, or your own as file.py:function); default: the "
                             "twelve")
    parser.add_argument("--mode", choices=MODES, default="gray",
                        help="gray: the published heatmap; overlay: in colour over the image; signed: keeps the sign")
    parser.add_argument("--no-model", dest="use_model", action="store_false",
                        help="title images with their label instead of the model's prediction")


def grid(args, size):
    suffix = "" if args.mode == "gray" else f"_{args.mode}"
    out = Path(args.out or f"figures/{model_tag(args.model, weights_tag(args.weights))}_grid{suffix}.png")
    fig, _, _ = build_grid(args.model, args.weights, args.indices, args.attr_prefix, args.data_dir, args.use_model,
                           args.mode, args.methods, args.spatial_range, args.max_iter, args.sampling_times, size)
    return save_figure(fig, out, args.dpi)


def curves_arguments(parser):
    add_model_and_output(parser, 150)
    parser.add_argument("--scores_dir", "--prefix", "--scores_prefix", dest="scores_prefix", default="scores",
                        metavar="DIR",
                        help="folder of the scores files")


def curves(args, size):
    out = Path(args.out or f"figures/{model_tag(args.model, weights_tag(args.weights))}_curves.png")
    fig, _, _ = build_curves(args.model, args.weights, args.scores_prefix, size)
    return save_figure(fig, out, args.dpi)


COMMANDS = {  # name: (help, arguments, run)
    "heatmaps": ("one method: each image beside its heatmap", heatmaps_arguments, heatmaps),
    "grid": ("the paper's figure: images and every method's heatmap", grid_arguments, grid),
    "curves": ("Insertion and Deletion curves of every scores file of a model", curves_arguments, curves),
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "heatmaps")  # the published form: plot.py --model ... --attr_method ...
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, formatter_class=HelpFormatter))
    args = parser.parse_args(argv)
    if args.dpi < 1:
        raise UserError("--dpi must be at least 1")
    out = COMMANDS[args.command][2](args, tuple(args.size) if args.size else None)
    print(f"wrote {out}")


if __name__ == "__main__":
    run_cli(main)
