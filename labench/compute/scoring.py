"""The scoring job behind eval.py: Insertion and Deletion curves of one method's maps (docs/PROTOCOL.md
"Insertion and deletion"), in resumable chunks; the scores file and its results.csv row."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from saliency import InsertionDeletion, auc, probability_model
from saliency.core.common import predict
from saliency.metric import GAMES, N_STEPS, TIES, default_batch_size, whole_curves

from ..errors import UserError
from ..nets.fast import compiled_for_inference
from ..nets.models import exact_model
from ..nets.runtime import auto_note, converted_for_metric, resolve_runtime
from ..spec.identity import metric_options as paper_metric
from ..spec.run import Run
from ..store.files import check_output_folder, load_npy, load_npz, read_results, save_npz, upsert_csv_row
from ..store.jobs import ChunkStore, Distributed
from .memory import auto_rows
from .progress import progress
from .setup import load_inputs, output_id

METRIC_DEFAULTS = {"ties": TIES[0], **paper_metric()}  # the paper's protocol
CHUNK = 10  # images per saved chunk unless the run says


# one record per image in the chunks: both curves and the class they score
RECORD = np.dtype([("curves", np.float32, (len(GAMES), N_STEPS + 1)), ("class", np.int64)])


def metric_options(run: Run) -> dict:
    """InsertionDeletion's options of a run: ties as NumPy under --published, the options its
    metric variants set (labench.spec.identity), the paper's protocol elsewhere."""
    return {"ties": "numpy" if run.published else METRIC_DEFAULTS["ties"], **run.metric_options}


def scored_records(images, maps, model, batch_size, progress=None, curves_model=None, **options):
    """[N] RECORD: insertion then deletion curve of every image and the class scored, the argmax
    on the clean image (in fp32 also under --amp: models.exact_model). curves_model: the logit
    model the curves' forwards run on (--runtime: labench.nets.runtime), default `model`; the class is
    decided by `model` either way. options: the metric's."""
    metric = InsertionDeletion(curves_model or model, batch_size=batch_size, **options)
    device = next(model.parameters()).device
    with torch.inference_mode():  # the very computation the metric makes when not given classes
        if exact_model(model) is not model:
            classes = predict(exact_model(model), images.to(device), batch_size)
        else:
            classes = predict(probability_model(model), images.to(device, torch.float32), batch_size)
    curves = metric.curves(images, maps, progress=progress, classes=classes)
    records = np.empty(len(images), RECORD)
    records["curves"] = torch.stack([curves["ins"].T, curves["del"].T], dim=1).numpy()
    records["class"] = classes.cpu().numpy()
    return records


def summarize(records):
    """The scores file's content: per game the AUC of the mean curve (the method's score), the
    curves [225, N] and the per-image AUCs [N]; the class scored for each image."""
    result = {}
    for k, game in enumerate(GAMES):
        curve = np.ascontiguousarray(records["curves"][:, k].T)  # [225, N]
        result[game.key] = np.float64(auc(curve.astype(np.float64).mean(axis=1)))
        result[f"{game.key}_curve"] = curve
        result[f"{game.key}_auc"] = auc(curve)
    result["classes"] = np.asarray(records["class"], dtype=np.int64)
    return result


def load_scores(path) -> dict:
    """A scores file as {"ins", "del": AUC of the mean curve; "ins_auc", "del_auc": [N] per-image
    AUCs; "ins_curve", "del_curve": [225, N]; "classes": [N] scored classes, or None in files
    written before they were recorded}."""
    scores = load_npz(path)
    missing = [k for g in GAMES for k in (g.key, f"{g.key}_curve") if k not in scores]
    if missing:
        raise UserError(f"{path} is not a scores file of eval.py (it lacks {', '.join(missing)}); delete it and rerun")
    for game in GAMES:
        if f"{game.key}_auc" not in scores:
            scores[f"{game.key}_auc"] = auc(scores[f"{game.key}_curve"])
    scores.setdefault("classes", None)
    return scores


def load_maps(path, images, limit=None):
    """The maps of `images`; with --limit, the first images of a larger maps file."""
    maps = load_npy(path, "attribution file", mmap=limit is not None)
    if limit is not None and maps.ndim == 4 and len(maps) > len(images):
        maps = maps[: len(images)]
    if maps.shape != tuple(images.shape):
        raise UserError(f"maps have shape {maps.shape} but the images {tuple(images.shape)}; "
                        "regenerate them with the same --data_dir and --limit")
    maps = np.array(maps, dtype=np.float32)
    if not np.isfinite(maps).all():
        raise UserError("the attribution file holds NaN or infinite values; regenerate it")
    return maps


def compute_scores(run: Run, out):
    """Curves chunk by chunk (resumable, split across torchrun ranks); rank 0 returns the scores."""
    maps_stem = output_id(run).maps().stem
    maps_path = Path(run.maps_file) if run.maps_file else Path(run.maps_dir) / f"{maps_stem}_attributions.npy"
    if run.runtime not in ("torch", "auto") and run.amp:
        raise UserError(f"--runtime {run.runtime} runs the metric in float32; drop --amp (bf16) or --runtime")
    loaded = {}

    def check_inputs(images):  # the maps and the output folder, before the model is built
        check_output_folder(run.scores_dir, 2 * len(images) * RECORD.itemsize)
        loaded["maps"] = load_maps(maps_path, images, run.limit)

    images, _, model, device = load_inputs(run, before_model=check_inputs)
    maps = loaded["maps"]
    options = metric_options(run)
    # the user's --batch_size goes into the manifest: an automatic one may differ on resume
    maps_named = maps_path.with_name(maps_path.name.removesuffix("_attributions.npy"))  # as stores before --maps
    settings = {"model": run.model, "weights": run.weights, "maps": str(maps_named),
                "batch_size": run.batch_size or "auto", "images": list(images.shape), "amp": run.amp,
                "channels_last": run.channels_last, "records": "curves+class"}
    settings.update({k: v for k, v in options.items() if v != METRIC_DEFAULTS[k]})  # named only when not default
    # on CUDA, perturbed images per forward fill the memory budget unless --batch_size is set
    fit = auto_rows(model, images.shape[1:], device, grad=False) if not run.batch_size else None
    batch_size = run.batch_size or (whole_curves(fit) if fit else default_batch_size(device))
    dist = Distributed(device)
    with ChunkStore(out, len(images), run.chunk or CHUNK, settings) as store:
        todo = store.claim(dist)
        if todo is None:  # another process held the output and wrote it
            return load_scores(out) if dist.main else None
        per_image = 2 * (N_STEPS + 1)
        curves_model, note = None, None
        pixel_rows = per_image * sum(b - a for a, b in todo) * images[0, 0].numel()
        runtime = resolve_runtime(run.runtime, device, run.amp, run.fast, pixel_rows)
        if runtime != "torch" and todo:  # converted once, for this run's rows per call; checked on its first images
            curves_model, note = converted_for_metric(runtime, model, images, batch_size)
        elif run.runtime == "auto" and todo:
            note = auto_note(run.runtime, device, run.amp, run.fast)
        if run.fast and not run.amp and runtime == "torch":  # the metric only runs forwards: compile where it pays
            model, note = compiled_for_inference(model, (batch_size, *images.shape[1:]),
                                                 per_image * sum(b - a for a, b in todo))
        if note and dist.main:
            print(note, file=sys.stderr)
        with progress(per_image * sum(b - a for a, b in todo), "insertion/deletion", "img",
                      disable=not dist.main) as bar:
            for a, b in todo:
                chunk_maps = torch.from_numpy(maps[a:b])
                store.save(a, b, scored_records(images[a:b], chunk_maps, model, batch_size, bar, curves_model,
                                                **options))

        def write(records):
            scores = summarize(records)
            save_npz(scores, out)
            return scores

        return store.finish(dist, write)


def results_row(out_id, scores) -> dict:
    """The results.csv row of an output's scores (values rounded to 6 places, docs/PROTOCOL.md)."""
    return {**out_id.csv_key(), **{game.name: round(float(scores[game.key]), 6) for game in GAMES}}


def run(run: Run):
    """Write the scores file (unless it exists) and the results.csv row of the run's identity."""
    out_id = output_id(run)
    out = Path(run.scores_dir) / out_id.scores_file
    read_results(run.csv_path)  # a foreign or damaged results.csv is reported before any work
    check_output_folder(Path(run.csv_path).parent, flag="--csv_path")
    if out.exists():
        scores = load_scores(out)
        print(f"{out} exists; not recomputed")
    else:
        scores = compute_scores(run, out)
        if scores is None:  # not rank 0: rank 0 writes the row
            return
    row = results_row(out_id, scores)
    upsert_csv_row(run.csv_path, row)
    print(f"{row['model']} {row['attr_method']}: insertion {row['insertion']}, deletion {row['deletion']} -> {run.csv_path}")
