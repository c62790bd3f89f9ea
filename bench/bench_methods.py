"""Seconds per image of every built method and of the metric, at default settings.

    .venv/bin/python bench/bench_methods.py --model efficientnet_lite0 --images 2

A benchmark, not a test: it prints a Markdown table for docs/PERFORMANCE.md. Inputs are the
cached evaluation images (data/img_batch.pt) when present, else random images.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saliency import saliency_zoo  # noqa: E402
from saliency.metric import InsertionDeletion  # noqa: E402
from utils import load_model, probability_model, resolve_device  # noqa: E402


def load_images(n, data_dir):
    path = Path(data_dir) / "img_batch.pt"
    if path.exists():
        images = torch.load(path)[:n]
        labels = torch.load(Path(data_dir) / "label_batch.pt")[:n]
        if len(images) == n:
            return images, labels
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 224, 224, generator=g), torch.randint(0, 1000, (n,), generator=g)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_method(name, model, images, labels, device, batch_size):
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        part = slice(i, i + batch_size)
        saliency_zoo.attribute(name, model, images[part], labels[part], indices=range(i, min(i + batch_size, len(images))),
                               reference_images=images)
    sync(device)
    return (time.perf_counter() - start) / len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=None, help="default: every built method")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--no-metric", action="store_true")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    images, labels = load_images(args.images, args.data_dir)
    images, labels = images.to(device), labels.to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"{args.model} ({args.weights}) on {name}, torch {torch.__version__}, {args.images} images at 224x224, fp32\n")
    print("| stage | batch | s / image |\n| --- | --- | --- |")
    for method in args.methods or saliency_zoo.built_methods():
        batch = saliency_zoo.get_method(method).reference_batch
        seconds = time_method(method, model, images, labels, device, batch)
        print(f"| {method} (defaults) | {batch} | {seconds:.2f} |", flush=True)
    if not args.no_metric:
        maps = torch.rand(images.shape, generator=torch.Generator().manual_seed(1))
        metric = InsertionDeletion(probability_model(model), batch_size=100)
        sync(device)
        start = time.perf_counter()
        metric.curves(images, maps)
        sync(device)
        print(f"| insertion + deletion (450 forwards) | 100 | {(time.perf_counter() - start) / len(images):.2f} |")


if __name__ == "__main__":
    main()
