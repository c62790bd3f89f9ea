"""The whole benchmark for one model or several in one command (the logic of report.py): the maps
of every method on the first N evaluation images, their Insertion and Deletion under the paper's
metric and under each metric variant (on the first V images), the stochastic methods again under
other seeds (on the first S images), the tables with intervals, significance, ranks, robustness,
seed spread, the correctly classified images and the agreement across models, and a README that
says what was run. Resumable: every stage skips what is on disk."""
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

from saliency import PAPER_ORDER, get_method
from saliency.metric import GAMES

from ..compute import attributions, scoring
from ..compute.data import describe_evaluation_set, load_labels
from ..errors import UserError
from ..nets.models import DEFAULT_MODEL, resolve_device
from ..present.significance import collect_results, write_statistics
from ..present.tables import write_tables
from ..spec.identity import PAPER, metric_variants
from ..spec.run import Run
from ..stats.analysis import protocol_of
from ..store.files import atomic_path, check_output_folder, locked
from . import grid
from .cli import SEEDED_METHODS, checked_methods


@dataclass(frozen=True)
class Request:
    """What report.py is asked for (its flags, read once by the script)."""
    models: tuple = (DEFAULT_MODEL,)  # the rows of the tables
    weights: str = "default"
    data_dir: str = "data"
    images: int = 64
    variant_images: int | None = None  # the metric variants score only the first V images (None: all)
    methods: tuple = ()  # () = all twelve
    variants: tuple = ()  # short names of metric variants (labench.spec.identity.metric_variants)
    settings: tuple = ()  # ((file parameter, value), ...) of the methods with file parameters (LA)
    seed: int = 0
    device: str = "auto"
    runtime: str = "auto"  # the metric's forward passes on a CPU (labench.nets.runtime)
    out: str = "report"
    tables_only: bool = False
    seed_reruns: tuple = ()  # other seeds for the methods whose maps depend on the seed
    seed_images: int = 16  # ... on the first S images
    results: str | None = None  # a document whose marked block gets the README (docs/RESULTS.md)

    @property
    def rerun_methods(self) -> list:
        """The methods the seed reruns compute again: those of the report whose maps depend on the seed."""
        return [m for m in SEEDED_METHODS if m in (self.methods or PAPER_ORDER)] if self.seed_reruns else []


def plan(request: Request):
    """The checked (methods, variants) of a report; errors name the fix before any work."""
    if not request.models:
        raise UserError("--model needs at least one model")
    methods = checked_methods(request.methods)
    known = metric_variants()
    unknown = [v for v in request.variants if v not in known]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    for flag, value in (("images", request.images), ("variant_images", request.variant_images),
                        ("seed_images", request.seed_images)):
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be at least 1, got {value}")
    if any(seed < 0 or seed == request.seed for seed in request.seed_reruns):
        raise UserError(f"--seed_reruns takes seeds of 0 or more other than --seed ({request.seed}), got "
                        f"{' '.join(map(str, request.seed_reruns))}")
    if request.seed_reruns and request.weights == "random":
        raise UserError("--seed_reruns needs fixed weights: with --weights random the seed draws the weights too "
                        "(use a checkpoint, or drop --seed_reruns)")
    if request.results and Path(request.results).exists():  # before hours of work, not after
        marked_block(request.results, Path(request.results).read_text())
    if request.variant_images and request.variant_images > request.images:
        raise UserError(f"--variant_images ({request.variant_images}) cannot exceed --images ({request.images})")
    return methods, list(dict.fromkeys(request.variants))


class Timings:
    """Seconds spent per stage, kept in <out>/timings.json across resumed runs and shared by reports
    of other models writing into the same --out at the same time (each adds its stage under a lock)."""

    def __init__(self, path):
        self.path = Path(path)
        self.seconds = self._read()

    def _read(self):
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, stage, work):
        """Run work() and add its seconds to `stage`; an interrupted stage keeps the seconds it ran
        (its finished chunks are kept too), so that resumed runs add up."""
        start = time.perf_counter()
        try:
            work()
        finally:
            self._add(stage, time.perf_counter() - start)

    def _add(self, stage, elapsed):
        with locked(self.path):
            self.seconds = self._read()
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + elapsed, 1)
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(self.seconds, indent=1, sort_keys=True))


def run(request: Request, log=print):
    """Compute what is missing, then write the tables and <out>/README.md; returns the README's path."""
    methods, variants = plan(request)
    out = Path(request.out)
    check_output_folder(out, flag="--out")
    device = resolve_device(request.device)
    labels = load_labels(request.data_dir).numpy()
    if request.images > len(labels):
        log(f"note: {request.data_dir} holds {len(labels)} images; the report uses them all")
        request = replace(request, images=len(labels))
    request = replace(request, seed_images=min(request.seed_images, request.images))
    variant_images = min(request.variant_images or request.images, request.images)
    base = Run(data_dir=request.data_dir, device=request.device, seed=request.seed, runtime=request.runtime,
               maps_dir=out / "attributions",
               scores_dir=out / "scores", csv_path=out / "results.csv")
    timings = Timings(out / "timings.json")
    started = time.perf_counter()
    if not request.tables_only:
        compute(request, methods, variants, variant_images, base, timings, log)
    tables = out / "tables"
    _, written = write_tables(base.csv_path, tables, all_methods=False, plots=True, models=request.models)
    _, stats_written = write_statistics(base.csv_path, base.scores_dir, tables, plots=True, reruns_csv=reruns_csv(out),
                                        labels=labels[: request.images], models=request.models)
    readme = write_readme(request, methods, variants, variant_images, device, timings.seconds,
                          time.perf_counter() - started, written + stats_written,
                          scored_images(base, request.models, reruns_csv(out)) if request.tables_only else {})
    log(f"wrote {readme}")
    if request.results:
        log(f"wrote {publish(readme.read_text(), request.results)}")
    return readme


BEGIN = "<!-- begin: written by report.py --results; edit outside this block -->"
END = "<!-- end: written by report.py --results -->"


def marked_block(path, text):
    """(start of BEGIN, start of END) in a document meant for --results; the fix if they are not there."""
    start, end = text.find(BEGIN), text.find(END)
    if text.count(BEGIN) != 1 or text.count(END) != 1 or end < start:
        raise UserError(f"{path} needs the line {BEGIN} and, below it, the line {END} once each: add them "
                        "where the report's tables go, or name a new file with --results")
    return start, end


def publish(readme: str, path) -> Path:
    """The report (its headings one level down) into `path` between the lines BEGIN and END, the
    rest of the document (its prose) kept as it is; a new document holds the block alone."""
    path = Path(path)
    block = "\n".join([BEGIN, *(f"#{line}" if line.startswith("#") else line for line in readme.splitlines()), END])
    if not path.exists():
        text = block + "\n"
    else:
        text = path.read_text()
        start, end = marked_block(path, text)
        text = text[:start] + block + text[end + len(END):]
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def scored_images(base: Run, models, reruns=None) -> dict:
    """{model: {what: images}} as the tables read them (the most images over its methods); what is
    'paper', a metric variant's short name (report.py --variants) or 'seed N' for the reruns in
    `reruns`. Only a --tables_only run needs it: models run into one --out, each with its own
    --images, --variants and --seed_reruns, then tabled together."""
    short = {mode: name for name, mode in metric_variants().items()}
    found = {}
    for csv, rerun in ((base.csv_path, False), (reruns, True)):
        if csv is None or not Path(csv).exists():
            continue
        per_image = collect_results(csv, base.scores_dir, models=models)
        for tag, methods in per_image.values.items():
            (model, _, other_modes, seed), protocol = protocol_of(per_image.outputs[tag])
            if other_modes:  # a -published or -fast row is not the report's
                continue
            what = f"seed {seed}" if rerun else short.get(protocol, protocol)
            images = max(len(v[GAMES[0]]) for v in methods.values())
            ran = found.setdefault(model, {})
            ran[what] = max(ran.get(what, 0), images)
    return found


def planned_images(request: Request, variants, variant_images) -> dict:
    """{what: images} as the request plans them for each model (scored_images' keys)."""
    return {PAPER: request.images, **{v: variant_images for v in variants},
            **{f"seed {s}": request.seed_images for s in request.seed_reruns}}


def per_model_line(models, scored) -> str:
    def ran(what, n):
        return f"the paper's metric on {n} images" if what == PAPER else f"{what} on {n}"

    return ("- what each model ran (each with its own command into this --out): "
            + "; ".join(f"{m}: " + ", ".join(ran(w, n) for w, n in scored[m].items()) for m in models if m in scored))


def reruns_csv(out) -> Path:
    """The results file of the seed reruns (their maps and scores files sit beside the others, named
    -seed<N>): kept apart so that the main tables show the report's own seed."""
    return Path(out) / "seed_reruns.csv"


def compute(request, methods, variants, variant_images, base, timings, log):
    """The maps of every method and their scores under each protocol, then the seed reruns (what
    is on disk is kept), planned by labench.flows.grid."""
    models = [(model, request.weights) for model in request.models]
    settings = {param: (value,) for param, value in request.settings}

    def stage(run, *words):  # named with its model: reports of other models may share timings.json
        return " ".join([*words[:1], run.model, *words[1:], run.method])

    for maps in grid.expand(models, methods, settings, base=replace(base, limit=request.images)):
        log(f"== maps: {maps.model} {maps.method}")
        timings.run(stage(maps, "maps"), lambda: attributions.run(maps))
    modes = metric_variants()
    protocols = [("paper", (), request.images)] + [(v, (modes[v],), variant_images) for v in variants]
    for name, mode_set, n in protocols:
        for scores in grid.expand(models, methods, settings, (mode_set,), replace(base, limit=n)):
            log(f"== scores ({name}, {n} images): {scores.model} {scores.method}")
            timings.run(stage(scores, "scores", name), lambda: scoring.run(scores))
    for seed in request.seed_reruns:
        rerun = replace(base, seed=seed, csv_path=reruns_csv(request.out))
        for maps in grid.expand(models, request.rerun_methods, settings, base=rerun):
            # a method drawing from the loaded images (eg's references) loads as many as the seed-0 run
            limit = request.images if get_method(maps.method).takes_reference_images else request.seed_images
            log(f"== maps, seed {seed} ({limit} images): {maps.model} {maps.method}")
            timings.run(stage(maps, "maps", f"seed {seed}"), lambda: attributions.run(replace(maps, limit=limit)))
        for scores in grid.expand(models, request.rerun_methods, settings, base=replace(rerun, limit=request.seed_images)):
            log(f"== scores (paper, seed {seed}, {request.seed_images} images): {scores.model} {scores.method}")
            timings.run(stage(scores, "scores", f"paper seed {seed}"), lambda: scoring.run(scores))


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
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads > 1 else ''})"


SECTIONS = [("Main tables (means)", "insertion.md"), ("", "deletion.md"),
            ("Intervals, significance and effect sizes", "statistics.md"),
            ("The headline, baseline by baseline", "headlines.md"), ("Ranks with their intervals", "ranks.md"),
            ("Robustness to the metric's choices", "robustness.md"), ("Seed spread", "seeds.md"),
            ("The correctly classified images", "correct.md"), ("Across models", "models.md")]


def stage_table(seconds, models) -> list:
    """Markdown lines: the seconds of each stage (timings.json), one column per model (each stage
    names its model; stages of models outside this report are left out), and each model's total."""
    rows = {}
    for stage, value in seconds.items():
        words = stage.split()
        model = next((w for w in words if w in models), None)
        if model is not None:
            rows.setdefault(" ".join(w for w in words if w != model), {})[model] = value

    def order(stage):  # maps, then scores (the paper's metric first); the seed reruns last; methods in the paper's order
        *words, method = stage.split()
        return ("seed" in words, words[0] != "maps", words[1:2] != [PAPER], words,
                PAPER_ORDER.index(method) if method in PAPER_ORDER else len(PAPER_ORDER))

    totals = [sum(rows[stage].get(m, 0.0) for stage in rows) for m in models]
    return [f"| stage | {' | '.join(models)} |", "| --- |" + " --- |" * len(models),
            *[f"| {stage} | " + " | ".join(f"{rows[stage][m]:.1f}" if m in rows[stage] else "-" for m in models) + " |"
              for stage in sorted(rows, key=order)],
            "| all stages | " + " | ".join(f"{t:.0f} ({t / 3600:.1f} h)" for t in totals) + " |"]


def runtime_words(runtime) -> str:
    """What the README says of --runtime: the runtime asked for (auto resolves per run, on the
    device each stage ran on)."""
    if runtime == "torch":
        return ""
    if runtime == "auto":
        return "; forward passes on a CPU in OpenVINO or ONNX Runtime where installed (--runtime auto)"
    return f"; forward passes in {runtime} on a CPU (--runtime)"


def seed_line(request: Request) -> str:
    if not request.seed_reruns:
        return "- seed reruns: none (--seed_reruns)"
    pool = [m for m in request.rerun_methods if get_method(m).takes_reference_images]
    return (f"- seed reruns: {', '.join(request.rerun_methods)} (the methods whose maps depend on the seed) again with "
            f"seed {', '.join(map(str, request.seed_reruns))} on the first {request.seed_images} images, under the "
            "paper's metric; their rows are in `seed_reruns.csv`"
            + (f" ({', '.join(pool)} draws from all {request.images} images, as the seed-{request.seed} run)" if pool
               else ""))


def write_readme(request: Request, methods, variants, variant_images, device, seconds, elapsed, written,
                 scored=None):
    out = Path(request.out)
    planned = planned_images(request, variants, variant_images)
    differs = any(ran != planned for ran in (scored or {}).values())  # models run apart, then tabled together
    if differs:
        title = ", ".join(f"{m} ({scored[m].get(PAPER, 0)} images)" for m in request.models if m in scored)
        data = f"the first images of `{request.data_dir}`, as many as the next line says"
        scope = "; which model on how many images: 'what each model ran' above"
    else:
        title = f"{', '.join(request.models)}, {request.images} evaluation images"
        data = f"first {request.images} images of `{request.data_dir}`"
        scope = ""
    lines = [
        f"# Report: {title}",
        "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{' '.join(['report.py', *sys.argv[1:]])}`.",
        "",
        f"- model{'s' if len(request.models) > 1 else ''}: {', '.join(f'`{m}`' for m in request.models)}, weights "
        f"`{request.weights}`; data: {data}",
        *([per_model_line(request.models, scored)] if differs else []),
        f"- evaluation set: {describe_evaluation_set(request.data_dir, request.images)}",
        f"- methods: {', '.join(methods)} (LA: {', '.join(f'{p} {v}' for p, v in request.settings)}); "
        f"seed {request.seed}",
        f"- metric: the paper's (black substrate, channel-wise ranking, 224 steps)"
        + ("" if differs else f" on {request.images} images")
        + (f"; variants {', '.join(variants)}" + ("" if differs else f" on the first {variant_images}") if variants
           else "")
        + runtime_words(request.runtime)
        + scope,
        seed_line(request) + (scope if request.seed_reruns else ""),
        "- statistics (docs/PROTOCOL.md \"Statistics\"): BCa bootstrap 95% intervals over images (10,000 resamples, "
        "seed 0); LA against each method: the mean difference, its paired sign-flip permutation test, Holm-corrected "
        "over the comparisons of one table (one model, game, metric protocol and mode), and the interval that inverts "
        "that test at the row's Holm level (it excludes 0 exactly where the verdict is better or worse); LA's win "
        "rate and median relative shift; ranks and Kendall's tau with bootstrap intervals (labench.present.significance)",
        "- device: " + ("not this --tables_only run's (it computes nothing): the stages below ran where their "
                        "runs did" if request.tables_only else device_name(device)),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- time: {elapsed:.0f} s in this run; per stage over every run of this report (a stage computed "
        "before, or by the scripts directly, counts 0):",
        "",
        *stage_table(seconds, request.models),
        "",
        "Files: " + ", ".join(f"`{Path(p).relative_to(out)}`" for p in written),
        "",
    ]
    current = {Path(p).name for p in written}  # not a file an earlier run left
    for title, name in SECTIONS:
        path = out / "tables" / name
        if name in current and path.exists():
            lines += [*([f"## {title}", ""] if title else []), path.read_text(), ""]
    readme = out / "README.md"
    with atomic_path(readme) as tmp:
        tmp.write_text("\n".join(lines))
    return readme
