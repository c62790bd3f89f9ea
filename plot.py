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

The heatmap is the published one (`heatmap`): mean over channels, clipped to the 80th..99th
percentile, scaled to [0, 1], shown in gray (not transposed, docs/DEVIATIONS.md item 7).
--mode overlay draws it in colour over the image; --mode signed shows the channel mean divided
by its 99th percentile of absolute values, clipped to [-1, 1], red positive and blue negative.

LA in the grid: --spatial_range/--max_iter/--sampling_times name one file; options left out
match any value. Among the LA files that match, the grid takes the paper's default (20, 20, 20)
if present, else the setting with the most work (max_iter * sampling_times), then the
spatial_range closest to 20, then the smallest values.

Output: .png or .pdf by the --out suffix; --size W H (inches) and --dpi. No display is needed.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from saliency.saliency_zoo import PAPER_ORDER  # noqa: E402
from utils import UserError, atomic_path, class_names, load_dataset, load_npy, model_tag, output_stem, run_cli  # noqa: E402

DISPLAY_NAMES = {"la": "LA", "agi": "AGI", "attexplore": "AttEXplore", "big": "BIG", "deeplift": "DeepLIFT",
                 "eg": "EG", "fast_ig": "FIG", "guided_ig": "GIG", "ig": "IG", "mfaba": "MFABA", "sg": "SG", "sm": "SM"}
LA_DEFAULT = (20, 20, 20)
MODES = ("gray", "overlay", "signed")


# ---------------------------------------------------------------- heatmaps


def heatmap(attribution, low_percentile=80, high_percentile=99):
    """[C,H,W] map -> [H,W] in [0,1]: channel mean clipped to its low..high percentiles, rescaled."""
    gray = np.asarray(attribution, dtype=np.float64).mean(axis=0)
    low, high = np.percentile(gray, low_percentile), np.percentile(gray, high_percentile)
    return (np.clip(gray, low, high) - low) / (high - low + 1e-6)


def signed_heatmap(attribution, percentile=99):
    """[C,H,W] map -> [H,W] in [-1,1]: channel mean over its `percentile` of absolute values, clipped.

    Keeps the sign, so evidence for (positive) and against (negative) the class stay apart; an
    all-zero map gives zeros.
    """
    mean = np.asarray(attribution, dtype=np.float64).mean(axis=0)
    scale = np.percentile(np.abs(mean), percentile)
    if scale <= 0:
        scale = np.abs(mean).max()
    return np.clip(mean / scale, -1, 1) if scale > 0 else np.zeros_like(mean)


def show_map(ax, attribution, image=None, mode="gray", alpha=0.5, cmap="jet"):
    """Draw one map on `ax`: gray (published), overlay (colour over `image`) or signed."""
    if mode == "gray":
        ax.imshow(heatmap(attribution), cmap="gray", vmin=0, vmax=1)
    elif mode == "overlay":
        if image is None:
            raise ValueError("overlay mode needs the image")
        ax.imshow(np.asarray(image).transpose(1, 2, 0))
        ax.imshow(heatmap(attribution), alpha=alpha, cmap=cmap, vmin=0, vmax=1)
    elif mode == "signed":
        ax.imshow(signed_heatmap(attribution), cmap="bwr", vmin=-1, vmax=1)
    else:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    ax.axis("off")
    return ax


def plot(attribution, image, ax=None, alpha=0.5, cmap="jet"):
    """Overlay: the image with the heatmap in colour on top. image: [3,H,W] in [0,1]."""
    ax = ax or plt.figure().gca()
    return show_map(ax, attribution, image, mode="overlay", alpha=alpha, cmap=cmap)


def save_figure(fig, path, dpi=100):
    """Write `fig` atomically as PNG or PDF (by the suffix) and close it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "pdf"):
        raise UserError(f"figures are written as .png or .pdf, not {path.suffix!r} ({path})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    plt.close(fig)
    return path


def heatmap_pairs(images, maps, titles, path=None, dpi=100, mode="gray", size=None):
    """One row per image: the image, then its heatmap. Returns the figure; saves it if `path`."""
    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=size or (4, 2 * n), squeeze=False)
    for row, (image, attribution, title) in enumerate(zip(images, maps, titles)):
        axes[row, 0].imshow(np.asarray(image).transpose(1, 2, 0))
        axes[row, 0].set_title(title, fontsize=8)
        axes[row, 0].axis("off")
        show_map(axes[row, 1], attribution, image, mode)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


# ---------------------------------------------------------------- what is on disk

_LA_PATTERN = r"_la_spatial-range-(\d+)_max-iter-(\d+)_sampling-times-(\d+)"


def la_settings(tag, folder, suffix):
    """{(r, T, S): path} of the LA files of model `tag` in `folder` ending in `suffix`."""
    pattern = re.compile(re.escape(tag) + _LA_PATTERN + re.escape(suffix) + "$")
    found = {}
    for path in Path(folder).glob(f"{tag}_la_*{suffix}"):
        match = pattern.match(path.name)
        if match:
            found[tuple(int(v) for v in match.groups())] = path
    return found


def choose_la_setting(settings, spatial_range=None, max_iter=None, sampling_times=None):
    """The LA setting the grid shows (module docstring), or None if no file matches."""
    wanted = (spatial_range, max_iter, sampling_times)
    matching = [s for s in settings if all(w is None or w == v for w, v in zip(wanted, s))]
    if not matching:
        return None
    return min(matching, key=lambda s: (s != LA_DEFAULT, -s[1] * s[2], abs(s[0] - 20), s))


def la_label(setting):
    r, t, s = setting
    return f"LA (r={r}, T={t}, S={s})"


def discover_maps(tag, attr_prefix="attributions", methods=None, spatial_range=None, max_iter=None,
                  sampling_times=None):
    """({method: path} in the paper's order, [methods without a map], LA setting or None)."""
    found, missing, setting = {}, [], None
    for method in [m for m in PAPER_ORDER if methods is None or m in methods]:
        if method == "la":
            settings = la_settings(tag, attr_prefix, "_attributions.npy")
            setting = choose_la_setting(settings, spatial_range, max_iter, sampling_times)
            path = settings.get(setting)
        else:
            path = Path(attr_prefix) / f"{output_stem(tag, method)}_attributions.npy"
        if path is not None and path.is_file():
            found[method] = path
        else:
            missing.append(method)
    return found, missing, setting


def discover_scores(tag, scores_prefix="scores"):
    """[(label, path)] of every scores file of model `tag`: paper order, LA settings sorted."""
    entries = []
    for method in PAPER_ORDER:
        if method == "la":
            for setting, path in sorted(la_settings(tag, scores_prefix, "_scores.npz").items()):
                entries.append((la_label(setting), path))
        else:
            path = Path(scores_prefix) / f"{output_stem(tag, method)}_scores.npz"
            if path.is_file():
                entries.append((DISPLAY_NAMES[method], path))
    return entries


def load_maps(path):
    """The attribution array, memory-mapped so that a 1000-image file is not read whole."""
    try:
        return np.load(path, mmap_mode="r")
    except Exception:
        return load_npy(path, "attribution file")  # raises the one-line error for a corrupt file


def load_scores(path):
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except Exception:
        raise UserError(f"scores file {path} is corrupt; delete it and rerun eval.py") from None


# ---------------------------------------------------------------- the grid


def grid_figure(images, maps, titles, mode="gray", size=None, note=None):
    """Rows: images; columns: the image, then one panel per entry of `maps` ({column title: [N,C,H,W]}).

    `images` [N,3,H,W] in [0,1], `titles` one per image. Returns the figure.
    """
    rows, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=size or (1.25 * cols, 1.35 * rows + (0.25 if note else 0)),
                             squeeze=False)
    for row, image in enumerate(images):
        axes[row, 0].imshow(np.asarray(image).transpose(1, 2, 0))
        axes[row, 0].set_title(titles[row], fontsize=7)
        axes[row, 0].axis("off")
        for col, (name, method_maps) in enumerate(maps.items(), start=1):
            show_map(axes[row, col], method_maps[row], image, mode)
            if row == 0:
                axes[row, col].set_title(name, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.06 if note else 0.01, wspace=0.04, hspace=0.2)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6, color="0.4", ha="left", va="bottom")
    return fig


def predicted_titles(images, model=None, labels=None):
    """Class names for the grid's first column: the model's argmax, or the labels without a model."""
    names = class_names()
    if model is not None:
        import torch

        with torch.no_grad():
            classes = model(torch.as_tensor(np.asarray(images), dtype=torch.float32)).argmax(1).tolist()
        return [names.get(c, str(c)) for c in classes]
    return [f"label: {names.get(int(c), str(int(c)))}" for c in labels]


def build_grid(model="efficientnet_lite0", weights="default", indices=(0, 1, 2, 3), attr_prefix="attributions",
               data_dir="data", use_model=True, mode="gray", methods=None, spatial_range=None, max_iter=None,
               sampling_times=None, size=None, log=print):
    """Load what is on disk and return (figure, {method: path} shown, [(method, why) left out])."""
    tag = model_tag(model, weights)
    images, labels = load_dataset(data_dir)
    indices = list(range(min(4, len(images)))) if indices is None else [int(i) for i in indices]
    if any(i < 0 for i in indices):
        raise UserError("image indices must be 0 or more")
    beyond = [i for i in indices if i >= len(images)]
    if beyond:
        log(f"left out image indices {beyond}: the data has {len(images)} images")
        indices = [i for i in indices if i < len(images)]
    if not indices:
        raise UserError(f"no image index below {len(images)}: the data in {data_dir} has {len(images)} images")
    found, missing, setting = discover_maps(tag, attr_prefix, methods, spatial_range, max_iter, sampling_times)
    left_out = [(m, "no map on disk") for m in missing]
    columns, shown = {}, {}
    for method, path in found.items():
        maps = load_maps(path)
        if maps.ndim != 4 or maps.shape[1:] != tuple(images.shape[1:]) or len(maps) <= max(indices):
            left_out.append((method, f"{path.name} has shape {maps.shape}"))
            continue
        name = "LA\nr={} T={} S={}".format(*setting) if method == "la" else DISPLAY_NAMES[method]
        columns[name] = np.asarray(maps[indices], dtype=np.float32)
        shown[method] = path
    for method, why in left_out:
        if why != "no map on disk":
            log(f"left out of the grid: {DISPLAY_NAMES[method]} ({why})")
    if not columns:
        log(f"no attribution maps of {tag} under {attr_prefix}/; the grid shows the images only")
    chosen = images[indices]
    net = None
    if use_model:
        from utils import load_model

        try:
            net = load_model(model, weights)
        except UserError as err:
            raise UserError(f"{err} (or pass --no-model to title the images with their labels)") from None
    titles = predicted_titles(chosen, net, labels[indices])
    no_map = [DISPLAY_NAMES[m] for m, why in left_out if why == "no map on disk"]
    wrong = [DISPLAY_NAMES[m] for m, why in left_out if why != "no map on disk"]
    note = "; ".join([f"no map on disk: {', '.join(no_map)}"] * bool(no_map)
                     + [f"maps of the wrong shape: {', '.join(wrong)}"] * bool(wrong))
    if no_map:
        log(f"left out of the grid (no map on disk under {attr_prefix}/): {', '.join(no_map)}")
    return grid_figure(chosen.numpy(), columns, titles, mode, size, note or None), shown, left_out


# ---------------------------------------------------------------- curves


def curves_figure(entries, size=None):
    """Insertion and Deletion panels; one line per (label, scores dict) with its AUC in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=size or (10, 4), squeeze=True)
    for ax, game, title in zip(axes, ("ins", "del"), ("Insertion", "Deletion")):
        for label, scores in entries:
            curve = np.asarray(scores[f"{game}_curve"], dtype=np.float64).mean(axis=1)
            x = np.linspace(0, 1, len(curve))
            ax.plot(x, curve, label=f"{label}: {float(scores[game]):.4f}", linewidth=1.2)
        ax.set_title(f"{title} (AUC in legend)")
        ax.set_xlabel("fraction of values " + ("inserted" if game == "ins" else "deleted"))
        ax.set_ylabel("mean probability of the predicted class")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if entries:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def build_curves(model="efficientnet_lite0", weights="default", scores_prefix="scores", size=None, log=print):
    """Load every scores file of the model; return (figure, [(label, path)] drawn, [(path, why)] left out)."""
    tag = model_tag(model, weights)
    entries, drawn, left_out = [], [], []
    for label, path in discover_scores(tag, scores_prefix):
        scores = load_scores(path)
        if not {"ins", "del", "ins_curve", "del_curve"} <= set(scores):
            left_out.append((path, "no curves (AUCs only)"))
            continue
        entries.append((label, scores))
        drawn.append((label, path))
    if left_out:
        log("left out of the curves: " + "; ".join(f"{p.name} ({why})" for p, why in left_out))
    if not entries:
        log(f"no scores files with curves for {tag} under {scores_prefix}/")
    return curves_figure(entries, size), drawn, left_out


def scores_table(model="efficientnet_lite0", weights="default", scores_prefix="scores"):
    """[(label, insertion AUC, deletion AUC)] from the scores files, in the curves' order."""
    rows = []
    for label, path in discover_scores(model_tag(model, weights), scores_prefix):
        scores = load_scores(path)
        rows.append((label, float(scores["ins"]), float(scores["del"])))
    return rows


# ---------------------------------------------------------------- CLI


def _add_common(parser, dpi):
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--out", default=None, help="output file, .png or .pdf")
    parser.add_argument("--size", type=float, nargs=2, metavar=("W", "H"), default=None, help="figure size in inches")
    parser.add_argument("--dpi", type=int, default=dpi)


def _add_la(parser, default):
    for flag in ("--spatial_range", "--max_iter", "--sampling_times"):
        parser.add_argument(flag, type=int, default=default)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("heatmaps", "grid", "curves")
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help")):
        argv.insert(0, "heatmaps")  # the published form: plot.py --model ... --attr_method ...
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    pairs = sub.add_parser("heatmaps", help="one method: each image beside its heatmap")
    _add_common(pairs, 100)
    pairs.add_argument("--attr_method", default="la")
    _add_la(pairs, 20)
    pairs.add_argument("--attr_prefix", default="attributions")
    pairs.add_argument("--data_dir", default="data")
    pairs.add_argument("--count", type=int, default=6, help="how many images")
    pairs.add_argument("--mode", choices=MODES, default="gray")

    grid = sub.add_parser("grid", help="the paper's figure: images and every method's heatmap")
    _add_common(grid, 150)
    _add_la(grid, None)
    grid.add_argument("--attr_prefix", default="attributions")
    grid.add_argument("--data_dir", default="data")
    grid.add_argument("--indices", type=int, nargs="+", default=[0, 1, 2, 3], help="image indices (rows)")
    grid.add_argument("--methods", nargs="+", choices=PAPER_ORDER, default=None, metavar="METHOD",
                      help=f"only these ({', '.join(PAPER_ORDER)}); default: all")
    grid.add_argument("--mode", choices=MODES, default="gray")
    grid.add_argument("--no-model", dest="use_model", action="store_false",
                      help="title images with their label instead of the model's prediction")

    curves = sub.add_parser("curves", help="Insertion and Deletion curves of every scores file of a model")
    _add_common(curves, 150)
    curves.add_argument("--prefix", "--scores_prefix", dest="scores_prefix", default="scores")
    args = parser.parse_args(argv)

    size = tuple(args.size) if args.size else None
    if args.dpi < 1:
        raise UserError("--dpi must be at least 1")
    tag = model_tag(args.model, args.weights)
    if args.command == "heatmaps":
        if args.attr_method not in PAPER_ORDER:
            raise UserError(f"unknown method {args.attr_method!r}; choose one of {', '.join(PAPER_ORDER)}")
        stem = output_stem(tag, args.attr_method, args.spatial_range, args.max_iter, args.sampling_times)
        maps = load_npy(Path(args.attr_prefix) / f"{stem}_attributions.npy", "attribution file")
        images, labels = load_dataset(args.data_dir)
        count = min(args.count, len(maps), len(images))
        if count < 1:
            raise UserError("--count must be at least 1")
        names = class_names()
        titles = [f"{i}: {names.get(int(labels[i]), labels[i])}" for i in range(count)]
        out = Path(args.out or f"figures/{stem}_heatmaps.png")
        heatmap_pairs(images[:count].numpy(), maps[:count], titles, out, dpi=args.dpi, mode=args.mode, size=size)
    elif args.command == "grid":
        suffix = "" if args.mode == "gray" else f"_{args.mode}"
        out = Path(args.out or f"figures/{tag}_grid{suffix}.png")
        fig, _, _ = build_grid(args.model, args.weights, args.indices, args.attr_prefix, args.data_dir,
                               args.use_model, args.mode, args.methods, args.spatial_range, args.max_iter,
                               args.sampling_times, size)
        save_figure(fig, out, args.dpi)
    else:
        out = Path(args.out or f"figures/{tag}_curves.png")
        fig, _, _ = build_curves(args.model, args.weights, args.scores_prefix, size)
        save_figure(fig, out, args.dpi)
    print(f"wrote {out}")


if __name__ == "__main__":
    run_cli(main)
