"""The whole benchmark for one model in one command (the logic of report.py): the maps of every
method on the first N evaluation images, their Insertion and Deletion under the paper's metric
and under each metric variant (on the first V images), the tables with intervals, significance
and robustness, and a README that says what was run. Resumable: every stage skips what is on disk."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from saliency import PAPER_ORDER, SaliencyError, get_method

from . import attributions, scoring
from .cli import attribution_parser, eval_parser
from .data import load_dataset
from .errors import UserError
from .files import atomic_path, check_output_folder
from .models import resolve_device
from .significance import write_statistics
from .tables import write_tables

# a variant's name -> eval.py's flags (SPEC "Metric variants")
VARIANTS = {"blur": ["--substrate", "blur"], "mean": ["--substrate", "mean"], "pixel": ["--order", "pixel"]}


def plan(args):
    """The checked (methods, variants) of a report; errors name the fix before any work."""
    methods = list(dict.fromkeys(args.methods or PAPER_ORDER))
    for method in methods:
        try:
            get_method(method)
        except SaliencyError as err:
            raise UserError(str(err)) from None
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    for flag in ("images", "variant_images"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be at least 1, got {value}")
    if args.variant_images and args.variant_images > args.images:
        raise UserError(f"--variant_images ({args.variant_images}) cannot exceed --images ({args.images})")
    return methods, list(dict.fromkeys(args.variants))


def common_flags(args, method):
    return ["--model", args.model, "--weights", args.weights, "--attr_method", method, "--data_dir", args.data_dir,
            "--device", args.device, "--spatial_range", str(args.spatial_range), "--max_iter", str(args.max_iter),
            "--sampling_times", str(args.sampling_times)]


class Timings:
    """Seconds spent per stage, kept in <out>/timings.json across resumed runs."""

    def __init__(self, path):
        self.path = Path(path)
        self.seconds = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, stage, work):
        start = time.perf_counter()
        work()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 1)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.seconds, indent=1, sort_keys=True))


def run(args, log=print):
    """Compute what is missing, then write the tables and <out>/README.md; returns the README's path."""
    methods, variants = plan(args)
    args.tables_only = getattr(args, "tables_only", False)
    out = Path(args.out)
    check_output_folder(out, flag="--out")
    device = resolve_device(args.device)
    available = len(load_dataset(args.data_dir)[1])
    if args.images > available:
        log(f"note: {args.data_dir} holds {available} images; the report uses them all")
        args.images = available
    variant_images = min(args.variant_images or args.images, args.images)
    paths = {"attr_prefix": out / "attributions", "prefix": out / "scores", "csv_path": out / "results.csv"}
    timings = Timings(out / "timings.json")
    started = time.perf_counter()
    if not args.tables_only:
        compute(args, methods, variants, variant_images, paths, timings, log)
    tables = out / "tables"
    _, written = write_tables(paths["csv_path"], tables, all_methods=False, plots=True)
    _, stats_written = write_statistics(paths["csv_path"], paths["prefix"], tables, plots=True)
    readme = write_readme(args, methods, variants, variant_images, device, timings.seconds,
                          time.perf_counter() - started, written + stats_written)
    log(f"wrote {readme}")
    return readme


def compute(args, methods, variants, variant_images, paths, timings, log):
    """The maps of every method and their scores under each protocol (what is on disk is kept)."""
    for method in methods:
        gen = attribution_parser().parse_args([*common_flags(args, method), "--limit", str(args.images), "--seed",
                                               str(args.seed), "--prefix", str(paths["attr_prefix"])])
        log(f"== maps: {method}")
        timings.run(f"maps {method}", lambda: attributions.run(gen))
    protocols = [("paper", [], args.images)] + [(v, VARIANTS[v], variant_images) for v in variants]
    for name, flags, n in protocols:
        for method in methods:
            ev = eval_parser().parse_args([*common_flags(args, method), *flags, "--limit", str(n),
                                           "--runtime", getattr(args, "runtime", "torch"),
                                           *[f"--{k}={v}" for k, v in paths.items()]])
            log(f"== scores ({name}, {n} images): {method}")
            timings.run(f"scores {name} {method}", lambda: scoring.run(ev))


def versions():
    import numpy
    import scipy
    import torchvision

    found = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
             "numpy": numpy.__version__, "scipy": scipy.__version__}
    try:
        import timm

        found["timm"] = timm.__version__
    except ImportError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    found["la-bench commit"] = commit or "unknown"
    return found


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_readme(args, methods, variants, variant_images, device, seconds, elapsed, written):
    out = Path(args.out)
    lines = [
        f"# Report: {args.model}, {args.images} evaluation images",
        "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{' '.join(['report.py', *sys.argv[1:]])}`.",
        "",
        f"- model: `{args.model}`, weights `{args.weights}`; data: first {args.images} images of `{args.data_dir}`",
        f"- methods: {', '.join(methods)} (LA: spatial_range {args.spatial_range}, max_iter {args.max_iter}, "
        f"sampling_times {args.sampling_times}); seed {args.seed}",
        f"- metric: the paper's (black substrate, channel-wise ranking, 224 steps) on {args.images} images"
        + (f"; variants {', '.join(variants)} on the first {variant_images}" if variants else "")
        + (f"; forward passes in {args.runtime} on a CPU (--runtime)" if getattr(args, "runtime", "torch") != "torch"
           else ""),
        f"- statistics: BCa bootstrap 95% intervals over images (10,000 resamples, seed 0); LA against each "
        "method: paired bootstrap interval and Wilcoxon signed-rank p, Holm-corrected per table (labench.significance)",
        f"- device: {device_name(device)}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- time: {elapsed:.0f} s in this run; per stage over every run of this report (a stage computed "
        "before, or by the scripts directly, counts 0):",
        "",
        "| stage | seconds |",
        "| --- | --- |",
        *[f"| {stage} | {value:.1f} |" for stage, value in sorted(seconds.items())],
        "",
        "Files: " + ", ".join(f"`{Path(p).relative_to(out)}`" for p in written),
        "",
    ]
    for title, name in [("Main tables (means)", "insertion.md"), ("", "deletion.md"),
                        ("Intervals and significance", "statistics.md"), ("Robustness to the metric's choices",
                                                                          "robustness.md")]:
        path = out / "tables" / name
        if path.exists():
            lines += [*([f"## {title}", ""] if title else []), path.read_text(), ""]
    readme = out / "README.md"
    with atomic_path(readme) as tmp:
        tmp.write_text("\n".join(lines))
    return readme
