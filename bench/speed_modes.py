"""Speed and AUC shift of the opt-in modes (--amp, --channels_last) against fp32.

    .venv/bin/python bench/speed_modes.py                      # LA 20/20/20 on data/ (the offline sample)
    .venv/bin/python bench/speed_modes.py --attr_method ig sg --device cuda
    .venv/bin/python bench/speed_modes.py --attr_method sm ig --modes amp --bf16_maps_everywhere

Runs generate_attributions.py and eval.py in-process, once per mode, into a temporary folder
(results.csv and attributions/ are left alone), and prints a Markdown table for
docs/PERFORMANCE.md: seconds of each script, the AUCs, and their shift against fp32. The bound
the project holds the modes to is |shift| <= 0.005. Under --amp a method's maps are bf16 only
where its registry entry says amp_maps; --bf16_maps_everywhere makes every method's maps bf16,
to re-measure which methods may. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labench.compute import attributions, scoring
from labench.spec.run import Run
from saliency import saliency_zoo

MODES = {"fp32": (), "amp": ("amp",), "channels_last": ("channels_last",), "amp+channels_last": ("amp", "channels_last")}
BOUND = 0.005


def run_mode(run, folder):
    """(attribution seconds, scoring seconds, scores file) of one mode's run."""
    run = dataclasses.replace(run, maps_dir=folder / "attributions", scores_dir=folder / "scores",
                              csv_path=folder / "results.csv")
    with contextlib.redirect_stdout(sys.stderr):  # the jobs' messages stay out of the table
        start = time.perf_counter()
        attributions.run(run)
        middle = time.perf_counter()
        scoring.run(run)
        end = time.perf_counter()
    return middle - start, end - middle, Path(run.scores_dir) / run.output_id.scores_file


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--attr_method", nargs="+", default=["la"])
    parser.add_argument("--spatial_range", type=int, default=20)
    parser.add_argument("--max_iter", type=int, default=20)
    parser.add_argument("--sampling_times", type=int, default=20)
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    parser.add_argument("--bf16_maps_everywhere", action="store_true",
                        help="--amp computes every method's maps in bf16 (ignores the registry's amp_maps)")
    args = parser.parse_args()
    if args.bf16_maps_everywhere:
        for name, method in saliency_zoo.ZOO.items():
            saliency_zoo.ZOO[name] = dataclasses.replace(method, amp_maps=True)
    print("| method | mode | maps | attributions s | scores s | speed-up | insertion | deletion | shift ins / del | within 0.005 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for method in args.attr_method:
        measure(args, method)


def measure(args, method):
    base_run = Run(model=args.model, weights=args.weights, method=method, data_dir=args.data_dir, limit=args.limit or None,
                   device=args.device, params={"spatial_range": args.spatial_range, "max_iter": args.max_iter,
                                               "sampling_times": args.sampling_times})
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ["fp32", *[m for m in args.modes if m != "fp32"]]:
            run = dataclasses.replace(base_run, modes=MODES[mode])
            attr_s, score_s, scores = run_mode(run, Path(tmp) / mode.replace("+", "-"))
            with np.load(scores) as data:
                rows[mode] = (attr_s, score_s, float(data["ins"]), float(data["del"]))

    base = rows["fp32"]
    bf16 = saliency_zoo.get_method(method).amp_maps
    for mode, (attr_s, score_s, ins, dele) in rows.items():
        d_ins, d_del = ins - base[2], dele - base[3]
        ok = "yes" if max(abs(d_ins), abs(d_del)) <= BOUND else "**no**"
        maps = "bf16" if "amp" in mode and bf16 else "fp32"
        print(f"| {method} | {mode} | {maps} | {attr_s:.1f} | {score_s:.1f} | "
              f"{(base[0] + base[1]) / (attr_s + score_s):.2f}x | {ins:.6f} | {dele:.6f} | "
              f"{d_ins:+.4f} / {d_del:+.4f} | {ok} |", flush=True)


if __name__ == "__main__":
    main()
