"""Top-1 and top-5 accuracy of models on the evaluation set in --data_dir: that each offline model
is a real ImageNet classifier (docs/USAGE.md "Models" quotes this bench).

    .venv/bin/python bench/accuracy.py --models efficientnet_lite0 efficientnet_lite1 efficientnet_lite2

Needs the cache of the published evaluation set (python generate_pt.py --png_dir ... --labels ...;
generate_pt.py --verify says whether data/ holds it). Prints one Markdown row per model: images,
top-1 and top-5 accuracy with a Wilson 95% interval, and the seconds the forwards took.
A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import time

import torch
from scipy.stats import binomtest

from labench.compute.data import describe_evaluation_set, load_dataset
from labench.errors import run_cli
from labench.nets.models import load_model


def topk_hits(model, images, labels, k=5, batch_size=32):
    """[N, 2] bool: whether the label is the top-1 class and whether it is among the top k."""
    hits = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = model(images[start:start + batch_size])
            top = logits.topk(k, dim=1).indices
            label = labels[start:start + batch_size, None]
            hits.append(torch.stack([top[:, 0] == label[:, 0], (top == label).any(dim=1)], dim=1))
    return torch.cat(hits)


def rate(successes, n):
    interval = binomtest(int(successes), n).proportion_ci(method="wilson")
    return f"{successes / n:.1%} [{interval.low:.1%}, {interval.high:.1%}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1",
                                                         "efficientnet_lite2"])
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args(argv)
    images, labels = load_dataset(args.data_dir)
    images, labels = images[:args.limit], labels[:args.limit]
    print(f"Evaluation set: {describe_evaluation_set(args.data_dir, len(images))}\n")
    print("| model | images | top-1 [95% CI] | top-5 [95% CI] | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.models:
        model = load_model(name)
        start = time.perf_counter()
        hits = topk_hits(model, images, labels)
        seconds = time.perf_counter() - start
        top1, top5 = (int(h) for h in hits.sum(dim=0))
        print(f"| {name} | {len(images)} | {rate(top1, len(images))} | {rate(top5, len(images))} | {seconds:.0f} |",
              flush=True)


if __name__ == "__main__":
    run_cli(main)
