"""Figures: heatmaps, the paper's heatmap grid, and Insertion/Deletion curves (the logic of
plot.py), the LA grid and robustness figures of the tables; no file is written unless asked, and
every figure is written by `save_figure`.

The heatmap is the published one (`heatmap`): mean over channels, clipped to the 80th..99th
percentile, scaled to [0, 1], shown in gray (not transposed, docs/DEVIATIONS.md item 7).
Methods with file parameters (LA) show the setting labench.spec.identity.choose_setting picks.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from saliency import PAPER_ORDER, get_method  # noqa: E402
from saliency.metric import GAMES, INSERTION  # noqa: E402

from ..compute.data import class_names, load_dataset  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..nets.models import load_model, weights_tag  # noqa: E402
from ..spec.identity import (LEAD, MAPS_SUFFIX, SCORES_SUFFIX, OutputId, choose_setting,  # noqa: E402
                             method_order, model_tag)
from ..stats.heatmaps import heatmap, signed_heatmap  # noqa: E402
from ..store.files import atomic_path, load_npy, load_npz  # noqa: E402

MODES = ("gray", "overlay", "signed")


# ---------------------------------------------------------------- heatmaps


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
    """Write `fig` atomically as PNG or PDF (by the suffix) and close it; returns the path."""
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


def load_maps(path):
    """The attribution array, memory-mapped so that a 1000-image file is not read whole."""
    return load_npy(path, "attribution file", mmap=True)


# ---------------------------------------------------------------- what is on disk


def outputs_on_disk(folder, suffix, model, weights="default", modes=()):
    """{method: {setting: path}} of the files in `folder` ending in `suffix` whose identity is
    (model, weights, modes) at the default seed; setting = the tuple of the method's file-parameter values."""
    found = {}
    for path in sorted(Path(folder).glob(f"*{suffix}")):
        try:
            out = OutputId.parse(path.name)
        except (UserError, ValueError):
            continue
        if (out.model, out.weights, out.modes, out.seed) == (model, weights_tag(weights), tuple(modes), 0):
            found.setdefault(out.method, {})[out.params] = path
    return found


def discover_maps(model, weights="default", attr_prefix="attributions", methods=None, setting=None):
    """({method: path} in the paper's order, [methods without a map], {method: chosen setting}).
    setting: {param: value or None} restricting the setting of methods with file parameters.
    methods: names or module:function of one's own (default: the twelve)."""
    names = PAPER_ORDER if methods is None else method_order([get_method(m).name for m in methods])  # registers
    on_disk = outputs_on_disk(attr_prefix, MAPS_SUFFIX, model, weights)  # so that the names of one's own parse
    found, missing, chosen = {}, [], {}
    for method in names:
        settings = on_disk.get(method, {})
        pick = choose_setting(method, settings, setting) if get_method(method).file_params else () if settings else None
        if pick is None or pick not in settings:
            missing.append(method)
            continue
        found[method] = settings[pick]
        if pick:
            chosen[method] = pick
    return found, missing, chosen


def discover_scores(model, weights="default", scores_prefix="scores"):
    """[(OutputId, path)] of every scores file of the model: paper order, settings sorted."""
    on_disk = outputs_on_disk(scores_prefix, SCORES_SUFFIX, model, weights)
    return [(OutputId.parse(path.name), path) for method in PAPER_ORDER
            for _, path in sorted(on_disk.get(method, {}).items())]


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
    tag = model_tag(model, weights_tag(weights))
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
    wanted = {"spatial_range": spatial_range, "max_iter": max_iter, "sampling_times": sampling_times}
    found, missing, chosen = discover_maps(model, weights, attr_prefix, methods, wanted)
    left_out = [(m, "no map on disk") for m in missing]
    columns, shown = {}, {}
    for method, path in found.items():
        maps = load_maps(path)
        if maps.ndim != 4 or maps.shape[1:] != tuple(images.shape[1:]) or len(maps) <= max(indices):
            left_out.append((method, f"{path.name} has shape {maps.shape}"))
            continue
        columns[OutputId.parse(path.name).label.replace(" (", "\n(")] = np.asarray(maps[indices], dtype=np.float32)
        shown[method] = path
    display = {m: get_method(m).display for m, _ in left_out}
    for method, why in left_out:
        if why != "no map on disk":
            log(f"left out of the grid: {display[method]} ({why})")
    if not columns:
        log(f"no attribution maps of {tag} under {attr_prefix}/; the grid shows the images only")
    chosen_images = images[indices]
    net = None
    if use_model:
        try:
            net = load_model(model, weights)
        except UserError as err:
            raise UserError(f"{err} (or pass --no-model to title the images with their labels)") from None
    titles = predicted_titles(chosen_images, net, labels[indices])
    no_map = [display[m] for m, why in left_out if why == "no map on disk"]
    wrong = [display[m] for m, why in left_out if why != "no map on disk"]
    note = "; ".join([f"no map on disk: {', '.join(no_map)}"] * bool(no_map)
                     + [f"maps of the wrong shape: {', '.join(wrong)}"] * bool(wrong))
    if no_map:
        log(f"left out of the grid (no map on disk under {attr_prefix}/): {', '.join(no_map)}")
    return grid_figure(chosen_images.numpy(), columns, titles, mode, size, note or None), shown, left_out


# ---------------------------------------------------------------- curves


def curves_figure(entries, size=None):
    """Insertion and Deletion panels; one line per (label, scores dict) with its AUC in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=size or (10, 4), squeeze=True)
    for ax, game in zip(axes, GAMES):
        for label, scores in entries:
            curve = np.asarray(scores[f"{game.key}_curve"], dtype=np.float64).mean(axis=1)
            x = np.linspace(0, 1, len(curve))
            ax.plot(x, curve, label=f"{label}: {float(scores[game.key]):.4f}", linewidth=1.2)
        ax.set_title(f"{game.title} (AUC in legend)")
        ax.set_xlabel(f"fraction of values {game.moved}")
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
    entries, drawn, left_out = [], [], []
    for out, path in discover_scores(model, weights, scores_prefix):
        scores = load_npz(path)
        if not {k for g in GAMES for k in (g.key, f"{g.key}_curve")} <= set(scores):
            left_out.append((path, "no curves (AUCs only)"))
            continue
        entries.append((out.label, scores))
        drawn.append((out.label, path))
    if left_out:
        log("left out of the curves: " + "; ".join(f"{p.name} ({why})" for p, why in left_out))
    if not entries:
        tag = model_tag(model, weights_tag(weights))
        log(f"no scores files with curves for {tag} under {scores_prefix}/")
    return curves_figure(entries, size), drawn, left_out


def scores_table(model="efficientnet_lite0", weights="default", scores_prefix="scores"):
    """[(label, insertion AUC, deletion AUC)] from the scores files, in the curves' order."""
    rows = []
    for out, path in discover_scores(model, weights, scores_prefix):
        scores = load_npz(path)
        rows.append((out.label, *(float(scores[game.key]) for game in GAMES)))
    return rows


# ---------------------------------------------------------------- the tables' figures


def la_grid_figure(grids, model):
    """One panel per spatial_range: AUC against max_iter, a line per sampling_times; insertion on the
    top row, deletion below. grids: {Game: labench.present.tables.la_grid of the model}."""
    ranges = list(grids[INSERTION].index.get_level_values(0).unique())
    fig, axes = plt.subplots(2, len(ranges), figsize=(3.6 * len(ranges) + 0.6, 6.2), squeeze=False,
                             sharex=True, sharey="row")
    for row, game in enumerate(GAMES):
        grid = grids[game]
        for col, r in enumerate(ranges):
            ax = axes[row][col]
            part = grid.loc[r]
            for s in grid.columns:
                ax.plot(part.index, part[s], marker="o", label=f"S={s}")
            ax.set_title(f"{game.name}, r={r}", fontsize=10)
            ax.set_xticks(list(part.index))
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("max_iter T")
            if col == 0:
                ax.set_ylabel(f"{game.name} AUC ({game.better} is better)")
    axes[0][-1].legend(title="sampling_times", fontsize=8, title_fontsize=8)
    fig.suptitle(f"LA grid, {model}")
    fig.tight_layout()
    return fig


MARKERS = "osD^vP<X>*hp"


def ranks_figure(model, protocols, ranks, highlight=LEAD):
    """Rank of every method (1 = best) under each metric protocol, insertion left and deletion
    right; ranks: {Game: frame methods x protocols}; the `highlight` method drawn thicker."""
    fig, axes = plt.subplots(1, 2, figsize=(3.2 + 1.5 * len(protocols), 5.2), squeeze=False)
    for ax, game in zip(axes[0], GAMES):
        frame = ranks[game]
        for i, method in enumerate(frame.index):  # ten colours, so a marker each keeps twelve lines apart
            ax.plot(range(len(protocols)), frame.loc[method], marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}",
                    linewidth=2.2 if method == highlight else 1, label=get_method(method).display)
        ax.set_xticks(range(len(protocols)), [p.replace("+", "\n") for p in protocols], fontsize=8)
        ax.set_ylim(len(frame.index) + 0.5, 0.5)
        ax.set_ylabel("rank (1 = best)")
        ax.set_title(game.name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{model}: method ranks under each metric protocol")
    fig.tight_layout()
    return fig
