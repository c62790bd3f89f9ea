"""--fast against the eager model: what each step saves, and what it moves (#15).

    .venv/bin/python bench/fast_pass.py --model efficientnet_lite0 --data_dir data --images 64

1. Per-row cost of a forward (inference mode) and of a forward+backward (input gradient of one
   logit per row) at each --rows batch size, for: eager; BatchNorm folded; folded + static
   padding (= --fast); --fast + torch.compile (where a C/C++ compiler is found; else skipped
   with a note). Rounds interleaved (A B C D A B C D ...), best of each side.
2. Seconds per image of the metric (both games) and of LA at 10/10/10, eager vs --fast, on the
   first --timing_images images, rounds interleaved, best of each side.
3. The AUC shift on the first --images images: the metric of the default sm maps and LA 10/10/10
   (maps and metric) under --fast against eager; LA's seed floor (eager with seed 1 against seed
   0) measured in the same run. Per-image differences with a paired bootstrap 95% interval. Each
   run is cached in --out (`--runs` picks some, e.g. to split them over processes); the table
   prints once all five exist.

Prints Markdown for docs/PERFORMANCE.md. A benchmark, not a test: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from labench.compute.data import load_dataset
from labench.errors import run_cli
from labench.nets.fast import fast_model
from labench.nets.models import load_model
from labench.compute.scoring import scored_records
from labench.stats.inference import paired_comparison
from saliency import attribute, auc
from saliency.metric import GAMES


def variants(model, shape, compile_ok):
    found = {"eager": model,
             "fold": fast_model(model, shape, static_padding=False)[0],
             "fold+static pad (--fast)": fast_model(model, shape)[0]}
    if compile_ok:
        found["--fast + torch.compile"] = torch.compile(fast_model(model, shape)[0], dynamic=False)
    return found


def compiler_found():
    return any(shutil.which(c) for c in ("cc", "gcc", "clang", "g++"))


def per_row_costs(models, rows, rounds):
    """{(name, rows, 'fwd'|'fwd+bwd'): best seconds per row}, rounds interleaved over the models."""
    best = {}
    for _ in range(rounds):
        for b in rows:
            x = torch.rand(b, 3, 224, 224)
            for name, model in models.items():
                for kind in ("fwd", "fwd+bwd"):
                    start = time.perf_counter()
                    if kind == "fwd":
                        with torch.inference_mode():
                            model(x)
                    else:
                        xg = x.clone().requires_grad_(True)
                        model(xg)[:, 0].sum().backward()
                    seconds = (time.perf_counter() - start) / b
                    key = (name, b, kind)
                    best[key] = min(best.get(key, float("inf")), seconds)
    return best


def la_maps(model, images, seed=0):
    return attribute("la", model, images, torch.zeros(len(images), dtype=torch.long), seed=seed,
                     indices=range(len(images)), spatial_range=10, max_iter=10, sampling_times=10)


def stage_seconds(models, images, rounds):
    """{(name, stage): best seconds per image}: the metric on sm maps and LA 10/10/10."""
    maps = attribute("sm", models["eager"], images, torch.zeros(len(images), dtype=torch.long))
    best = {}
    for _ in range(rounds):
        for name, model in models.items():
            for stage, work in (("metric", lambda: scored_records(images, maps, model, 4)),
                                ("la 10/10/10", lambda: la_maps(model, images))):
                start = time.perf_counter()
                work()
                key = (name, stage)
                best[key] = min(best.get(key, float("inf")), (time.perf_counter() - start) / len(images))
    return best


def aucs(records):
    curves = records["curves"]
    return {game.key: auc(curves[:, k].T) for k, game in enumerate(GAMES)}


# the AUC-shift runs: name -> (method whose maps are scored, model of the maps, model of the metric, seed)
RUNS = {"sm eager": ("sm", "eager", "eager", 0), "sm fast metric": ("sm", "eager", "fast", 0),
        "la eager": ("la", "eager", "eager", 0), "la fast": ("la", "fast", "fast", 0),
        "la eager seed 1": ("la", "eager", "eager", 1), "sm compiled metric": ("sm", "eager", "compiled", 0)}


def shift_run(name, models, images, folder):
    """Per-image AUCs of one run, cached as <folder>/<name>.npz (resumable, one run per call)."""
    path = folder / (name.replace(" ", "_") + ".npz")
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    method, maps_model, metric_model, seed = RUNS[name]
    labels = torch.zeros(len(images), dtype=torch.long)
    if method == "la":
        maps = la_maps(models[maps_model], images, seed=seed)
    else:
        maps = attribute(method, models[maps_model], images, labels)
    result = aucs(scored_records(images, maps, models[metric_model], 4))
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


def shift_rows(eager, fast, label):
    """Markdown rows: per game, mean AUC both sides and the paired difference fast - eager."""
    rows = []
    for game in (g.key for g in GAMES):
        d = paired_comparison(fast[game], eager[game])
        rows.append(f"| {label} | {game} | {eager[game].mean():.5f} | {fast[game].mean():.5f} | "
                    f"{d['mean_diff']:+.2e} [{d['low']:+.2e}, {d['high']:+.2e}] | {np.abs(fast[game] - eager[game]).max():.2e} |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--rows", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timing_images", type=int, default=2)
    parser.add_argument("--images", type=int, default=64, help="images of the AUC shift (0: skip it)")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=None,
                        help="compute only these AUC-shift runs (each cached in --out; the table prints when all exist)")
    parser.add_argument("--out", default="bench_out/fast_pass", help="folder of the cached AUC-shift runs")
    parser.add_argument("--skip_timing", action="store_true", help="only the AUC-shift runs")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.model, weights=args.weights)
    compile_ok = compiler_found()
    models = variants(model, (3, 224, 224), compile_ok)
    print(f"{args.model}, {torch.get_num_threads()} threads; torch.compile: "
          f"{'measured' if compile_ok else 'skipped (no C/C++ compiler for the CPU inductor)'}\n")
    images, _ = load_dataset(args.data_dir)
    if not args.skip_timing:
        print_timings(args, models, images)
    shifts(args, model, models, images)


def print_timings(args, models, images):
    costs = per_row_costs(models, args.rows, args.rounds)
    print("| model pass | rows per call | " + " | ".join(f"{n} ms/row" for n in models) + " | --fast / eager |")
    print("|" + " --- |" * (len(models) + 3))
    for b in args.rows:
        for kind in ("fwd", "fwd+bwd"):
            cells = [f"{1000 * costs[(n, b, kind)]:.2f}" for n in models]
            ratio = costs[("fold+static pad (--fast)", b, kind)] / costs[("eager", b, kind)]
            print(f"| {kind} | {b} | " + " | ".join(cells) + f" | {ratio:.3f} |")
    stages = stage_seconds({k: models[k] for k in ("eager", "fold+static pad (--fast)")},
                           images[: args.timing_images], max(2, args.rounds // 2))
    print("\n| stage | eager s/img | --fast s/img | --fast / eager |\n| --- | --- | --- | --- |")
    for stage in ("metric", "la 10/10/10"):
        e, f = stages[("eager", stage)], stages[("fold+static pad (--fast)", stage)]
        print(f"| {stage} | {e:.3f} | {f:.3f} | {f / e:.3f} |")


def shifts(args, model, models, images):
    if args.images:
        x = images[: args.images]
        runs = {}
        for name in args.runs or RUNS:
            runs[name] = shift_run(name, {"eager": model, "fast": models["fold+static pad (--fast)"],
                                          "compiled": models.get("--fast + torch.compile")}, x, Path(args.out))
        if set(runs) >= set(RUNS) - {"sm compiled metric"}:
            print(f"\nAUC shift on the first {len(x)} images (paired bootstrap 95% interval over images)\n")
            print("| what | game | eager AUC | other AUC | other - eager [95% CI] | max abs per image |")
            print("| --- | --- | --- | --- | --- | --- |")
            print("\n".join(shift_rows(runs["sm eager"], runs["sm fast metric"], "metric of the eager sm maps, --fast")
                            + shift_rows(runs["la eager"], runs["la fast"], "LA 10/10/10 maps and metric, --fast")
                            + shift_rows(runs["la eager"], runs["la eager seed 1"],
                                         "LA 10/10/10 floor: eager, seed 1 vs seed 0")
                            + (shift_rows(runs["sm eager"], runs["sm compiled metric"],
                                          "metric of the eager sm maps, --fast compiled (eval.py on >= 45 images)")
                               if "sm compiled metric" in runs else [])))


if __name__ == "__main__":
    run_cli(main)
