"""This project against the published LA code, side by side on one machine, in one process.

    git clone https://github.com/LMBTough/LA /path/to/LA
    .venv/bin/python bench/versus_published.py --published /path/to/LA --data_dir data

For each item both sides get the same model object (frozen, eval mode), the same first images of
--data_dir, the same setting and the same threads:

- la: the published la(model, images, labels, ...) on all --images at once (the published code's
  batch is the images of one call) against `attribute("la", ...)` with its CPU defaults.
- agi: the published agi(...) against `attribute("agi", ...)`, the published defaults.
- metric: insertion and deletion of the same maps (sm maps of the model): the published
  CausalMetric.evaluate(..., batch_size) of both games against what eval.py runs by default
  (labench.compute.scoring.scored_records: the class, then the curves; on a CPU the inference runtime
  eval.py picks, its conversion and check included) and against its PyTorch path (--runtime torch).

Rounds are interleaved (ours, published, then published, ours, ...) and each side's best round counts:
this machine's speed drifts, and two jobs on its cores slow each other. Prints one Markdown table
(seconds, published / ours: above 1 means this project is faster). The published modules are
imported from the clone at run time (bench/published_code.py); nothing of them is copied here.
A benchmark, not a test: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from labench.compute.data import load_dataset
from labench.errors import run_cli
from labench.nets.models import load_model
from labench.nets.runtime import converted_for_metric, resolve_runtime
from labench.compute.scoring import scored_records
from saliency import attribute, probability_model
from saliency.metric import default_batch_size


def load_published(path):
    """bench/published_code.py's loader (a file beside this one, not an installed module)."""
    spec = importlib.util.spec_from_file_location("published_code", Path(__file__).resolve().parent / "published_code.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_published(path)

ITEMS = ("la", "agi", "metric")


def quiet(fn):
    """fn() with the published code's prints and progress bars swallowed."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def interleaved(sides: dict, rounds: int, log) -> dict:
    """{side: best seconds of fn()} over `rounds` rounds, the sides in turn within each round, their
    order reversed every other round (A B, B A, ...) so that neither side always runs first."""
    best = {}
    for round_ in range(rounds):
        for side, fn in (list(sides.items()) if round_ % 2 == 0 else list(sides.items())[::-1]):
            start = time.perf_counter()
            fn()
            seconds = time.perf_counter() - start
            best[side] = min(best.get(side, float("inf")), seconds)
            log(f"round {round_ + 1}: {side} {seconds:.1f} s")
    return best


def la_sides(published, model, images, labels, args):
    setting = dict(spatial_range=args.spatial_range, max_iter=args.la_iter, sampling_times=args.sampling_times)
    return {"ours": lambda: attribute("la", model, images, labels, **setting),
            "published": lambda: quiet(lambda: published.la(model, images, labels, **setting))}


def agi_sides(published, model, images, labels, args):
    setting = dict(max_iter=args.agi_iter, topk=args.topk)
    return {"ours": lambda: attribute("agi", model, images, labels, step_size=0.05, **setting),
            "published": lambda: quiet(lambda: published.agi(model, images, labels, epsilon=0.05, **setting))}


def metric_sides(published, model, images, labels, args):
    """The published metric, eval.py's default and its PyTorch path, on the model's sm maps."""
    maps = attribute("sm", model, images, labels)
    rows = default_batch_size("cpu")
    runtime = resolve_runtime("auto", "cpu")

    def ours(runtime):
        def run():
            curves_model, _ = converted_for_metric(runtime, model, images, rows)
            scored_records(images, maps, model, rows, curves_model=curves_model)
        return run

    def theirs():
        probabilities = probability_model(model)
        with torch.no_grad():
            for game in ("del", "ins"):
                metric = published.CausalMetric(probabilities, game, 224, torch.zeros_like, reverse=False)
                quiet(lambda: metric.evaluate(images.clone(), maps.numpy(), args.published_batch))

    sides = {f"ours ({runtime}, eval.py's default)": ours(runtime)} if runtime != "torch" else {}
    return {**sides, "ours (--runtime torch)": ours("torch"), "published": theirs}


def table(results: dict, args) -> list[str]:
    lines = ["| item | side | seconds | published / ours |", "| --- | --- | --- | --- |"]
    for item, best in results.items():
        theirs = best["published"]
        for side, seconds in best.items():
            ratio = "" if side == "published" else f"{theirs / seconds:.2f}x"
            lines.append(f"| {item} | {side} | {seconds:.1f} | {ratio} |")
    return lines


def describe(item, args) -> str:
    if item == "la":
        return (f"la on {args.images} images (spatial_range {args.spatial_range}, max_iter {args.la_iter}, "
                f"sampling_times {args.sampling_times})")
    if item == "agi":
        return f"agi on {args.images} images (max_iter {args.agi_iter}, topk {args.topk})"
    return (f"metric, insertion + deletion of {args.metric_images} images (published batch_size "
            f"{args.published_batch})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--published", required=True, help="a clone of the published LA repository")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--items", nargs="+", choices=ITEMS, default=list(ITEMS))
    parser.add_argument("--images", type=int, default=4, help="images of la and agi (one published call)")
    parser.add_argument("--metric_images", type=int, default=8)
    parser.add_argument("--published_batch", type=int, default=default_batch_size("cpu"),
                        help="the published metric's batch_size (must divide --metric_images)")
    parser.add_argument("--spatial_range", type=float, default=20)
    parser.add_argument("--la_iter", type=int, default=10)
    parser.add_argument("--sampling_times", type=int, default=10)
    parser.add_argument("--agi_iter", type=int, default=20)
    parser.add_argument("--topk", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.metric_images % args.published_batch:
        parser.error("--published_batch must divide --metric_images (the published metric asserts it)")
    torch.set_num_threads(args.threads)
    published = load_published(args.published)
    model = load_model(args.model)
    images, labels = load_dataset(args.data_dir)
    count = max(args.images, args.metric_images)
    images, labels = images[:count].clone(), labels[:count].clone()
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    builders = {"la": la_sides, "agi": agi_sides, "metric": metric_sides}
    results = {}
    for item in args.items:
        n = args.metric_images if item == "metric" else args.images
        log(f"== {describe(item, args)}")
        sides = builders[item](published, model, images[:n], labels[:n], args)
        results[describe(item, args)] = interleaved(sides, args.rounds, log)
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
          f"{args.model}, {args.rounds} rounds interleaved, best of each side; published code: {args.published}\n")
    print("\n".join(table(results, args)))


if __name__ == "__main__":
    run_cli(main)
