"""The metric's forward passes in an inference runtime (eval.py --runtime) against PyTorch (#26).

    .venv/bin/python bench/runtime.py --model efficientnet_lite0 --data_dir data --images 64

1. Per-row cost of the metric's forward (inference mode, fixed rows per call) for PyTorch eager,
   --fast (labench.nets.fast) and each installed runtime of labench.nets.runtime, at each --rows and with
   each --threads; the runtimes are converted for that shape and thread count, as eval.py does.
   Rounds interleaved over the sides, best of each side.
2. Seconds per image of the whole metric (both games of the eager sm maps, the class decided by
   eager PyTorch, as eval.py) at --metric_rows rows per call on the first --timing_images
   images, per side and thread count; rounds interleaved, best of each side.
3. The AUC shift against eager on the first --images images: maps of --method computed on the fly
   by the eager model, scored by each side with the largest of --threads; mean AUCs, the largest
   per-image AUC difference and the largest difference of any curve point. The reference for
   "float rounding" is the metric's own: eager PyTorch at another rows per call (--floor_rows)
   and with each other thread count of --threads, which change only how the kernels split their
   sums. Each side's per-image AUCs and curves are cached in --out (a rerun skips them).
4. The projected time of the 64-image twelve-method report per side: the maps' hours as measured
   (--maps_hours) plus the metric's measured hours (--metric_hours) times the side's metric
   seconds per image over eager's (defaults: the results run of docs/PERFORMANCE.md).

Prints Markdown for docs/PERFORMANCE.md. A benchmark, not a test: run it on a quiet machine.
`--size` scales the images (and the model's work) down for a quick check that it runs; its
timings mean nothing.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from labench.compute.data import load_dataset
from labench.errors import run_cli
from labench.nets.fast import fast_model
from labench.nets.models import load_model
from labench.nets.runtime import RUNTIMES, converted_for_metric
from labench.compute.scoring import scored_records
from saliency import attribute, auc

EAGER, FAST = "eager", "--fast"
GAMES = ("ins", "del")


def sides(model, images, rows, log):
    """{side: (class model, curves model)} for eager, --fast and each runtime that converts and
    passes labench.nets.runtime's check on the first images; runtimes that do not are left out, with
    the runtime's own note."""
    found = {EAGER: (model, None), FAST: (fast_model(model, tuple(images.shape[1:]))[0], None)}
    for runtime in RUNTIMES[1:]:
        converted, note = converted_for_metric(runtime, model, images, rows)
        if converted is not model:
            found[runtime] = (model, converted)
        elif note:
            log(f"{runtime} left out at {rows} rows, {torch.get_num_threads()} threads: {note}")
    return found


def per_row_costs(model, images, rows_list, rounds, log):
    """{(side, rows): best seconds per row of one forward}, rounds interleaved over the sides."""
    built = {rows: sides(model, images, rows, log) for rows in rows_list}
    best = {}
    for _ in range(rounds):
        for rows, found in built.items():
            x = torch.rand(rows, *images.shape[1:], generator=torch.Generator().manual_seed(rows))
            for side, (class_model, curves_model) in found.items():
                forward = curves_model or class_model
                with torch.inference_mode():
                    start = time.perf_counter()
                    forward(x)
                    seconds = (time.perf_counter() - start) / rows
                best[side, rows] = min(best.get((side, rows), float("inf")), seconds)
    return best


def metric_seconds(found, images, maps, rows, rounds):
    """{side: best seconds per image of the whole metric}, rounds interleaved over the sides."""
    best = {}
    for _ in range(rounds):
        for side, (class_model, curves_model) in found.items():
            start = time.perf_counter()
            scored_records(images, maps, class_model, rows, curves_model=curves_model)
            best[side] = min(best.get(side, float("inf")), (time.perf_counter() - start) / len(images))
    return best


def ratio_cell(seconds, eager, scale=1000.0, digits=2):
    return f"{scale * seconds:.{digits}f} ({eager / seconds:.2f}x)"


def timing_tables(args, model, images, maps, log):
    """Markdown: per-row forward costs and the metric's seconds per image, per thread count;
    returns them with {(threads, side): metric seconds per image}."""
    lines, metric = [], {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        costs = per_row_costs(model, images, args.rows, args.rounds, log)
        names = list(dict.fromkeys(side for side, _ in costs))
        if not lines:
            lines += ["| threads | rows per call | " + " | ".join(f"{n} ms/row" for n in names) + " |",
                      "|" + " --- |" * (len(names) + 2)]
        for rows in args.rows:
            eager = costs[EAGER, rows]
            cells = [ratio_cell(costs[n, rows], eager) if (n, rows) in costs else "-" for n in names]
            lines.append(f"| {threads} | {rows} | " + " | ".join(cells) + " |")
        found = sides(model, images, args.metric_rows, log)
        for side, seconds in metric_seconds(found, images[: args.timing_images], maps[: args.timing_images],
                                            args.metric_rows, args.rounds).items():
            metric[threads, side] = seconds
    names = list(dict.fromkeys(side for _, side in metric))
    lines += ["", f"Metric (both games, {args.metric_rows} rows per call), seconds per image:", "",
              "| threads | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for threads in args.threads:
        eager = metric[threads, EAGER]
        lines.append(f"| {threads} | " + " | ".join(ratio_cell(metric[threads, n], eager, 1.0) if (threads, n) in metric
                                                    else "-" for n in names) + " |")
    return lines, metric


def projection(args, metric):
    """Markdown: the 64-image twelve-method report's hours per side (module docstring, 4)."""
    lines = ["", f"Projected report ({args.maps_hours:g} h of maps + {args.metric_hours:g} h of metric in eager "
             "PyTorch, the metric scaled by each side's measured seconds per image):", "",
             "| threads | side | metric h | report h | report vs eager |", "| --- | --- | --- | --- | --- |"]
    for (threads, side), seconds in metric.items():
        hours = args.metric_hours * seconds / metric[threads, EAGER]
        lines.append(f"| {threads} | {side} | {hours:.2f} | {args.maps_hours + hours:.2f} | "
                     f"{(args.maps_hours + args.metric_hours) / (args.maps_hours + hours):.2f}x |")
    return lines


def scored_run(name, found, images, maps, rows, folder):
    """{'ins', 'del': per-image AUCs, 'curves': [N, 2, 225]} of one side, cached in folder/<name>.npz."""
    path = folder / f"{name}.npz"
    if path.exists():
        with np.load(path) as cached:
            return {k: cached[k] for k in cached.files}
    class_model, curves_model = found
    records = scored_records(images, maps, class_model, rows, curves_model=curves_model)
    result = {"curves": records["curves"], "classes": records["class"],
              **{game: auc(records["curves"][:, k].T) for k, game in enumerate(GAMES)}}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


def shift_tables(args, model, images, labels):
    """Markdown: each side's AUC and curve differences against eager on the first --images images."""
    x, y = images[: args.images], labels[: args.images]
    maps = attribute(args.method, model, x, y, indices=range(len(x)))
    folder = Path(args.out) / f"{args.model}-{args.weights}_{args.method}_{len(x)}images_{x.shape[-1]}px"
    threads = max(args.threads)
    torch.set_num_threads(threads)
    found = sides(model, x, args.metric_rows, print)
    fast = found.pop(FAST)  # scored last: a tagged mode, shown for comparison only
    runs = {side: scored_run(f"{side.removeprefix('--')}_threads{threads}", pair, x, maps, args.metric_rows, folder)
            for side, pair in found.items()}
    # the metric's own rounding: eager PyTorch at other rows per call, and with other threads
    runs[f"floor: eager, {args.floor_rows} rows per call"] = scored_run(
        f"eager_rows{args.floor_rows}_threads{threads}", (model, None), x, maps, args.floor_rows, folder)
    runs[FAST] = scored_run(f"{FAST.removeprefix('--')}_threads{threads}", fast, x, maps, args.metric_rows, folder)
    for other in sorted(set(args.threads) - {threads}):
        torch.set_num_threads(other)
        runs[f"floor: eager, {other} threads"] = scored_run(f"eager_threads{other}", (model, None), x, maps,
                                                            args.metric_rows, folder)
    torch.set_num_threads(threads)
    eager = runs.pop(EAGER)
    lines = ["", f"AUC shift against eager ({args.metric_rows} rows per call, {threads} threads) on the first "
             f"{len(x)} images, {args.method} maps:", "",
             "| side | game | eager AUC | side AUC | mean difference | max abs per image | max abs curve point | "
             "other class scored |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for side, run in runs.items():
        flips = int((run["classes"] != eager["classes"]).sum())  # --fast decides with its own copy; runtimes never
        for k, game in enumerate(GAMES):
            diff = run[game] - eager[game]
            curve = np.abs(run["curves"][:, k] - eager["curves"][:, k]).max()
            lines.append(f"| {side} | {game} | {eager[game].mean():.6f} | {run[game].mean():.6f} | {diff.mean():+.2e} | "
                         f"{np.abs(diff).max():.2e} | {curve:.2e} | {flips} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0", help="any model of labench.nets.models")
    parser.add_argument("--weights", default="default", help="'default', 'random', a weights name or a checkpoint")
    parser.add_argument("--data_dir", default="data", help="the evaluation images (generate_pt.py)")
    parser.add_argument("--size", type=int, default=None, help="resize the images (a quick check; not for timing)")
    parser.add_argument("--rows", type=int, nargs="+", default=[4, 8, 16, 32], help="rows per forward call")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--metric_rows", type=int, default=4, help="rows per call of the metric (eval.py's CPU default)")
    parser.add_argument("--timing_images", type=int, default=2, help="images of the metric's timing")
    parser.add_argument("--images", type=int, default=64, help="images of the AUC shift (0: skip it)")
    parser.add_argument("--method", default="sm", help="the method whose maps the AUC shift scores")
    parser.add_argument("--floor_rows", type=int, default=1, help="eager's other rows per call: a rounding floor")
    parser.add_argument("--maps_hours", type=float, default=2.1, help="the report's maps, measured (hours)")
    parser.add_argument("--metric_hours", type=float, default=5.0, help="the report's metric in eager PyTorch (hours)")
    parser.add_argument("--out", default="bench_out/runtime", help="folder of the cached AUC-shift runs")
    parser.add_argument("--skip_timing", action="store_true", help="only the AUC shift")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.model, weights=args.weights)
    images, labels = load_dataset(args.data_dir)
    if args.size:
        images = torch.nn.functional.interpolate(images, size=(args.size, args.size), mode="bilinear").clamp(0, 1)
    print(f"{args.model} ({args.weights}), images {tuple(images.shape[1:])}, torch {torch.__version__}\n")
    if not args.skip_timing:
        labels_t = labels[: args.timing_images]
        maps = attribute("sm", model, images[: args.timing_images], labels_t, indices=range(len(labels_t)))
        lines, metric = timing_tables(args, model, images, maps, print)
        print("\n".join(lines + projection(args, metric)))
    if args.images:
        print("\n".join(shift_tables(args, model, images, labels)))


if __name__ == "__main__":
    run_cli(main)
