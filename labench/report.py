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
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import attributions, grid, scoring
from .cli import checked_methods
from .data import describe_evaluation_set, load_dataset
from .errors import UserError
from .files import atomic_path, check_output_folder
from .identity import metric_variants
from .models import DEFAULT_MODEL, resolve_device
from .run import Run
from .significance import write_statistics
from .tables import write_tables


@dataclass(frozen=True)
class Request:
    """What report.py is asked for (its flags, read once by the script)."""
    model: str = DEFAULT_MODEL
    weights: str = "default"
    data_dir: str = "data"
    images: int = 64
    variant_images: int | None = None  # the metric variants score only the first V images (None: all)
    methods: tuple = ()  # () = all twelve
    variants: tuple = ()  # short names of metric variants (labench.identity.metric_variants)
    settings: tuple = ()  # ((file parameter, value), ...) of the methods with file parameters (LA)
    seed: int = 0
    device: str = "auto"
    runtime: str = "torch"  # the metric's forward passes on a CPU (labench.runtime)
    out: str = "report"
    tables_only: bool = False


def plan(request: Request):
    """The checked (methods, variants) of a report; errors name the fix before any work."""
    methods = checked_methods(request.methods)
    known = metric_variants()
    unknown = [v for v in request.variants if v not in known]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    for flag, value in (("images", request.images), ("variant_images", request.variant_images)):
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be at least 1, got {value}")
    if request.variant_images and request.variant_images > request.images:
        raise UserError(f"--variant_images ({request.variant_images}) cannot exceed --images ({request.images})")
    return methods, list(dict.fromkeys(request.variants))


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


def run(request: Request, log=print):
    """Compute what is missing, then write the tables and <out>/README.md; returns the README's path."""
    methods, variants = plan(request)
    out = Path(request.out)
    check_output_folder(out, flag="--out")
    device = resolve_device(request.device)
    available = len(load_dataset(request.data_dir)[1])
    if request.images > available:
        log(f"note: {request.data_dir} holds {available} images; the report uses them all")
        request = replace(request, images=available)
    variant_images = min(request.variant_images or request.images, request.images)
    base = Run(data_dir=request.data_dir, device=request.device, seed=request.seed, runtime=request.runtime,
               maps_dir=out / "attributions",
               scores_dir=out / "scores", csv_path=out / "results.csv")
    timings = Timings(out / "timings.json")
    started = time.perf_counter()
    if not request.tables_only:
        compute(request, methods, variants, variant_images, base, timings, log)
    tables = out / "tables"
    _, written = write_tables(base.csv_path, tables, all_methods=False, plots=True)
    _, stats_written = write_statistics(base.csv_path, base.scores_dir, tables, plots=True)
    readme = write_readme(request, methods, variants, variant_images, device, timings.seconds,
                          time.perf_counter() - started, written + stats_written)
    log(f"wrote {readme}")
    return readme


def compute(request, methods, variants, variant_images, base, timings, log):
    """The maps of every method and their scores under each protocol (what is on disk is kept),
    planned by labench.grid."""
    models = [(request.model, request.weights)]
    settings = {param: (value,) for param, value in request.settings}
    for maps in grid.expand(models, methods, settings, base=replace(base, limit=request.images)):
        log(f"== maps: {maps.method}")
        timings.run(f"maps {maps.method}", lambda: attributions.run(maps))
    modes = metric_variants()
    protocols = [("paper", (), request.images)] + [(v, (modes[v],), variant_images) for v in variants]
    for name, mode_set, n in protocols:
        for scores in grid.expand(models, methods, settings, (mode_set,), replace(base, limit=n)):
            log(f"== scores ({name}, {n} images): {scores.method}")
            timings.run(f"scores {name} {scores.method}", lambda: scoring.run(scores))


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


def write_readme(request: Request, methods, variants, variant_images, device, seconds, elapsed, written):
    out = Path(request.out)
    lines = [
        f"# Report: {request.model}, {request.images} evaluation images",
        "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{' '.join(['report.py', *sys.argv[1:]])}`.",
        "",
        f"- model: `{request.model}`, weights `{request.weights}`; data: first {request.images} images of "
        f"`{request.data_dir}`",
        f"- evaluation set: {describe_evaluation_set(request.data_dir, request.images)}",
        f"- methods: {', '.join(methods)} (LA: {', '.join(f'{p} {v}' for p, v in request.settings)}); "
        f"seed {request.seed}",
        f"- metric: the paper's (black substrate, channel-wise ranking, 224 steps) on {request.images} images"
        + (f"; variants {', '.join(variants)} on the first {variant_images}" if variants else "")
        + (f"; forward passes in {request.runtime} on a CPU (--runtime)" if request.runtime != "torch" else ""),
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
