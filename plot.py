"""Heatmaps of attribution maps.

    python plot.py --model efficientnet_lite0 --attr_method la --max_iter 10 --sampling_times 10

draws, for the first few images, the image (titled with its label's class name) beside its
heatmap, into figures/<stem>_heatmaps.png.

The heatmap is the published one: mean over channels, clipped to the 80th..99th percentile,
scaled to [0, 1], shown in gray.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils import UserError, class_names, load_dataset, load_npy, model_tag, output_stem, run_cli  # noqa: E402


def heatmap(attribution, low_percentile=80, high_percentile=99):
    """[C,H,W] map -> [H,W] in [0,1]: channel mean clipped to its low..high percentiles, rescaled."""
    gray = np.asarray(attribution, dtype=np.float64).mean(axis=0)
    low, high = np.percentile(gray, low_percentile), np.percentile(gray, high_percentile)
    return (np.clip(gray, low, high) - low) / (high - low + 1e-6)


def plot(attribution, image, ax=None, alpha=0.5, cmap="jet"):
    """Overlay: the image with the heatmap in colour on top. image: [3,H,W] in [0,1]."""
    ax = ax or plt.figure().gca()
    ax.imshow(np.asarray(image).transpose(1, 2, 0))
    ax.imshow(heatmap(attribution), alpha=alpha, cmap=cmap)
    ax.axis("off")
    return ax


def heatmap_pairs(images, maps, titles, path, dpi=100):
    """One row per image: the image, then its gray heatmap. Written atomically as PNG or PDF."""
    from utils import atomic_path

    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=(4, 2 * n), squeeze=False)
    for row, (image, attribution, title) in enumerate(zip(images, maps, titles)):
        axes[row, 0].imshow(np.asarray(image).transpose(1, 2, 0))
        axes[row, 0].set_title(title, fontsize=8)
        axes[row, 1].imshow(heatmap(attribution), cmap="gray", vmin=0, vmax=1)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--attr_method", default="la")
    parser.add_argument("--spatial_range", type=int, default=20)
    parser.add_argument("--max_iter", type=int, default=20)
    parser.add_argument("--sampling_times", type=int, default=20)
    parser.add_argument("--attr_prefix", default="attributions")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--count", type=int, default=6, help="how many images")
    parser.add_argument("--out", default=None, help="output file (.png or .pdf); default figures/<stem>_heatmaps.png")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)

    stem = output_stem(model_tag(args.model, args.weights), args.attr_method, args.spatial_range, args.max_iter,
                       args.sampling_times)
    maps = load_npy(Path(args.attr_prefix) / f"{stem}_attributions.npy", "attribution file")
    images, labels = load_dataset(args.data_dir)
    count = min(args.count, len(maps))
    if count < 1:
        raise UserError("--count must be at least 1")
    names = class_names()
    titles = [f"{i}: {names.get(int(labels[i]), labels[i])}" for i in range(count)]
    out = Path(args.out or f"figures/{stem}_heatmaps.png")
    heatmap_pairs(images[:count].numpy(), maps[:count], titles, out, dpi=args.dpi)
    print(f"wrote {out}")


if __name__ == "__main__":
    run_cli(main)
