"""The sanity checks in one command (sanity.py's logic; Adebayo et al., NeurIPS 2018; docs/PROTOCOL.md
"Sanity checks"): does each method's map depend on the model and on the class explained?

For each method it computes the maps of the first N images on the trained model, on the model
randomised from the top down to each chosen cascade stage, and for a randomly drawn other class
(labench.nets.randomisation; the modes cascade1 .. cascade5 and random_logit, through the attribution
job, so every map set is resumable and named apart), then compares each image's maps with its
trained map (labench.stats.similarity) and writes, under --out:

    sanity.md / sanity.tex   a table per measure: method x check, mean similarity [95% interval]
    sanity.csv               the same cells, one row per method, check and measure
    per_image.csv            every image's similarities
    <model tag>_sanity.png   the classic figure: a row per method, a column per check, one image

A method passes when its similarities fall towards 0 as more layers are randomised; a method
whose maps stay alike does not depend on what the model learned. An image whose trained map is
constant ranks nothing and is left out of its method's cells (the tables' note names it). Rerunning the command computes
only the maps not on disk yet and rewrites the tables and the figure."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saliency import get_method

from ..compute import attributions, setup
from ..compute.data import load_dataset
from ..errors import UserError
from ..nets.models import DEFAULT_MODEL, weights_tag
from ..nets.randomisation import CASCADE_STAGES, layer_units, stage_size
from ..present.figures import grid_figure, load_maps, save_figure
from ..present.render import Interval, Table, csv_text, latex, markdown, save_text
from ..spec.identity import (CASCADE_MODES, MISSING, RANDOM_LOGIT, SANITY, cascade_stage, declaration, method_order,
                             model_tag, ordered_modes)
from ..spec.run import Run
from ..stats.inference import N_RESAMPLES, SEED, mean_ci
from ..stats.similarity import MEASURES, constant, similarity
from . import cli

TRAINED = "trained"


@dataclass(frozen=True)
class Request:
    """What sanity.py is asked for (its flags, read once by the script)."""
    model: str = DEFAULT_MODEL
    weights: str = "default"
    methods: tuple = ()  # () = all twelve
    images: int = 8  # the first N images of the data
    stages: tuple = ()  # cascade stages (1..CASCADE_STAGES); () = all
    data_dir: str = "data"
    device: str = "auto"
    seed: int = 0  # of the randomised parameters, the other classes and the methods' own draws
    batch_size: int | None = None
    settings: tuple = ()  # ((file parameter, value), ...) of the methods with file parameters (LA)
    modes: tuple = ()  # other modes every map is computed under (e.g. fast)
    figure_image: int = 0  # the image the figure shows (an index below --images)
    out: str = "sanity"


@dataclass(frozen=True)
class Check:
    """One column: a cascade stage or the random logit (mode), or the trained model (no mode)."""
    name: str
    mode: str | None

    @property
    def modes(self) -> tuple:
        return (self.mode,) if self.mode else ()


def plan(request: Request):
    """The checked (methods, [Check] with the trained model first); errors name the fix first."""
    methods = cli.checked_methods(request.methods)
    stages = sorted(set(request.stages or range(1, CASCADE_STAGES + 1)))
    if any(not 1 <= k <= CASCADE_STAGES for k in stages):
        raise UserError(f"--stages must lie in 1..{CASCADE_STAGES}, got {' '.join(map(str, request.stages))}")
    if request.images < 1:
        raise UserError(f"--images must be at least 1, got {request.images}")
    if not 0 <= request.figure_image < request.images:
        raise UserError(f"--figure_image must lie in 0..{request.images - 1} (one of the --images), "
                        f"got {request.figure_image}")
    sanity = [m for m in ordered_modes(request.modes) if declaration(m).group == SANITY]
    if sanity:
        raise UserError(f"mode {sanity[0]} is one of the checks sanity.py runs itself; drop it")
    checks = [Check(TRAINED, None), *(Check(f"stage {k}", CASCADE_MODES[k].name) for k in stages),
              Check("random logit", RANDOM_LOGIT.name)]
    return method_order(methods), checks


def run_of(request: Request, method: str, check: Check) -> Run:
    return Run(model=request.model, weights=request.weights, method=method, params=dict(request.settings),
               modes=request.modes + check.modes,
               data_dir=request.data_dir, limit=request.images, device=request.device,
               batch_size=request.batch_size, seed=request.seed, maps_dir=str(Path(request.out) / "attributions"))


def maps_path(run: Run) -> Path:
    return Path(run.maps_dir) / setup.output_id(run).maps_file


def compute_maps(request: Request, methods, checks):
    """Every map set not on disk yet (the attribution job: resumable, one writer per file)."""
    for method in methods:
        for check in checks:
            attributions.run(run_of(request, method, check))


# ---------------------------------------------------------------- the comparisons


def per_image(request: Request, methods, checks):
    """([{method, check, image, constant, <measure>: value}] of every image and check but the trained
    model, {method: [images left out]}). An image whose trained map is constant (EG's map of an
    image that drew itself as its reference: all zeros) ranks nothing: it is left out of that
    method's comparisons."""
    rows, left_out = [], {}
    for method in methods:
        trained = load_maps(maps_path(run_of(request, method, checks[0])))
        compared = [i for i in range(request.images) if not constant(trained[i])]
        if len(compared) < request.images:
            left_out[method] = [i for i in range(request.images) if i not in compared]
        for check in checks[1:]:
            maps = load_maps(maps_path(run_of(request, method, check)))
            rows += [{"method": method, "check": check.name, "image": i, "constant": int(constant(maps[i])),
                      **similarity(trained[i], maps[i])} for i in compared]
    return rows, left_out


def cells(rows, methods, checks) -> dict:
    """{(method, check name, measure): (n, mean, low, high)}: the mean over images and its
    bootstrap interval (labench.stats.inference.mean_ci); none for a method without an image compared."""
    found = {}
    for method in methods:
        for check in checks[1:]:
            mine = [r for r in rows if r["method"] == method and r["check"] == check.name]
            for measure in MEASURES if mine else ():
                found[method, check.name, measure] = (len(mine), *mean_ci([r[measure] for r in mine],
                                                                          n_resamples=N_RESAMPLES, seed=SEED))
    return found


# ---------------------------------------------------------------- tables and figure


def stage_notes(request: Request, checks) -> str:
    """Which layers each cascade stage randomises, on this model's network."""
    units = layer_units(setup.network(Run(model=request.model, weights=request.weights, seed=request.seed)))
    names = [unit.name for unit in units]
    wrapper = names[0].split(".")[0] + "."  # load_model's Sequential around the network: not part of a layer's name
    if all(name.startswith(wrapper) for name in names):
        names = [name.removeprefix(wrapper) for name in names]
    lines = []
    for check in checks[1:]:
        if check.mode != RANDOM_LOGIT.name:
            size = stage_size(len(units), cascade_stage(check.modes))
            span = f"the head, {names[-1]}" if size == 1 else f"the last {size} of {len(names)} layers, " \
                                                                f"{names[-size]} .. {names[-1]}"
            lines.append(f"{check.name}: {span}")
    return "Randomised: " + "; ".join(lines)


def measure_table(cell_values, methods, checks, measure, images, notes, digits=2) -> Table:
    def cell(method, check):
        found = cell_values.get((method, check.name, measure))
        return MISSING if found is None else Interval(*found[1:], digits)

    rows = [[get_method(m).display, *(cell(m, c) for c in checks[1:])] for m in methods]
    what = f"{MEASURES[measure]} with the trained model's map"
    return Table(["method", *(c.name for c in checks[1:])], rows,
                 title=f"**{what}**: mean over {images} images [95% interval]",
                 caption=f"{what} (mean over {images} images, 95\\% interval)",
                 label=f"tab:sanity-{measure.replace('_', '-')}", note=notes)


def notes_of(request: Request, checks, rows, left_out) -> str:
    """What the tables' numbers rest on: the layers of each stage, the images left out, constant maps."""
    notes = [stage_notes(request, checks)]
    notes += [f"{get_method(m).display}: image{'s' * (len(i) > 1)} {', '.join(map(str, i))} left out (a constant "
              f"map on the trained model ranks nothing)" for m, i in left_out.items()]
    flat = sum(r["constant"] for r in rows)
    if flat:
        notes.append(f"{flat} maps under the checks were constant (rank correlation 0)")
    return ". ".join(notes) + "."


def long_table(cell_values) -> Table:
    return Table(["method", "check", "measure", "n", "mean", "low", "high"],
                 [[method, check, measure, *values] for (method, check, measure), values in cell_values.items()])


def unit_scale(attribution) -> np.ndarray:
    """The map over its largest absolute value: the published heatmap adds 1e-6 to its value range,
    which would draw a randomised model's faint maps (gradients of ~1e-8) black."""
    attribution = np.asarray(attribution, dtype=np.float32)
    largest = np.abs(attribution).max()
    return attribution / largest if largest > 0 else attribution


def figure(request: Request, methods, checks, image):
    """A row per method (the image, then its heatmap on the trained model and under every check)."""
    i = request.figure_image
    columns = {c.name: np.stack([unit_scale(load_maps(maps_path(run_of(request, m, c)))[i]) for m in methods])
               for c in checks}
    images = np.repeat(image[None].numpy(), len(methods), axis=0)
    return grid_figure(images, columns, [get_method(m).display for m in methods],
                       note=f"image {i}; columns: the trained model's map, then each check (sanity.md)")


def per_image_table(rows) -> Table:
    header = ["method", "check", "image", "constant", *MEASURES]
    return Table(header, [[r[k] for k in header] for r in rows])


def shown_image(request: Request):
    """The figure's image, after checking that the data holds --images images."""
    images, _ = load_dataset(request.data_dir, request.images)
    if len(images) < request.images:
        raise UserError(f"--images {request.images} but the data in {request.data_dir} holds {len(images)} images")
    return images[request.figure_image].clone()


def run(request: Request, log=print) -> list:
    """Compute what is missing, compare, write the tables and the figure; returns the written paths."""
    methods, checks = plan(request)
    image = shown_image(request)
    compute_maps(request, methods, checks)
    rows, left_out = per_image(request, methods, checks)
    cell_values = cells(rows, methods, checks)
    notes = notes_of(request, checks, rows, left_out)
    tables = [measure_table(cell_values, methods, checks, measure, request.images, notes) for measure in MEASURES]
    out = Path(request.out)
    tag = model_tag(request.model, weights_tag(request.weights, request.seed), ordered_modes(request.modes))
    written = [save_text(out / "sanity.md", f"# Sanity checks, {tag}\n\n" + "\n\n".join(map(markdown, tables))),
               save_text(out / "sanity.tex", "\n\n".join(map(latex, tables))),
               save_text(out / "sanity.csv", csv_text(long_table(cell_values))),
               save_text(out / "per_image.csv", csv_text(per_image_table(rows))),
               save_figure(figure(request, methods, checks, image), out / f"{tag}_sanity.png", dpi=120)]
    for path in written:
        log(f"wrote {path}")
    return written
