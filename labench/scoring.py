"""The scoring job behind eval.py: Insertion and Deletion curves of one method's maps (SPEC
"Insertion and deletion"), in resumable chunks; the scores file and its results.csv row."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from saliency import InsertionDeletion, auc, probability_model
from saliency.core.common import predict
from saliency.metric import GAMES, N_STEPS, default_batch_size, whole_curves

from .cli import load_inputs, output_id
from .errors import UserError
from .files import load_npy, load_npz, save_npz, upsert_csv_row
from .jobs import ChunkStore, Distributed
from .memory import auto_rows
from .models import exact_model


def curves_of(images, maps, model, batch_size, progress=None):
    """[N, 2, n_steps+1] float32: insertion then deletion curve of every image. The scored class
    is the fp32 argmax on the clean image, also under --amp (models.exact_model)."""
    metric = InsertionDeletion(probability_model(model), batch_size=batch_size)
    classes = None
    if exact_model(model) is not model:
        classes = predict(exact_model(model), images.to(next(model.parameters()).device), batch_size)
    curves = metric.curves(images, maps, progress=progress, classes=classes)
    return torch.stack([curves["ins"].T, curves["del"].T], dim=1).numpy()


def summarize(curves):
    """The scores file's content from [N, 2, 225] curves: AUCs of the mean curves and the curves."""
    result = {}
    for k, game in enumerate(GAMES):
        curve = curves[:, k].T  # [225, N]
        result[game] = np.float64(auc(curve.astype(np.float64).mean(axis=1)))
        result[f"{game}_curve"] = np.ascontiguousarray(curve)
    return result


def load_maps(path, images):
    maps = load_npy(path, "attribution file")
    if maps.shape != tuple(images.shape):
        raise UserError(f"maps have shape {maps.shape} but the images {tuple(images.shape)}; "
                        "regenerate them with the same --data_dir and --limit")
    if not np.isfinite(maps).all():
        raise UserError("the attribution file holds NaN or infinite values; regenerate it")
    return maps


def compute_scores(args, out):
    """Curves chunk by chunk (resumable, split across torchrun ranks); rank 0 returns the scores."""
    images, _, model, device = load_inputs(args)
    maps_stem = output_id(args).maps().stem
    maps = load_maps(Path(args.attr_prefix) / f"{maps_stem}_attributions.npy", images)
    # the user's --batch_size goes into the manifest: an automatic one may differ on resume
    settings = {"model": args.model, "weights": args.weights, "maps": str(Path(args.attr_prefix) / maps_stem),
                "batch_size": args.batch_size or "auto", "images": list(images.shape), "amp": args.amp,
                "channels_last": args.channels_last}
    store = ChunkStore(out, len(images), args.chunk, settings)
    # on CUDA, perturbed images per forward fill the memory budget unless --batch_size is set
    fit = auto_rows(model, images.shape[1:], device, grad=False) if not args.batch_size else None
    batch_size = args.batch_size or (whole_curves(fit) if fit else default_batch_size(device))
    dist = Distributed(device)
    todo = store.claim(dist)
    per_image = 2 * (N_STEPS + 1)
    with tqdm(total=per_image * sum(b - a for a, b in todo), desc="insertion/deletion", unit="img",
              disable=not dist.main) as bar:
        for a, b in todo:
            chunk_maps = torch.from_numpy(np.array(maps[a:b], dtype=np.float32))
            store.save(a, b, curves_of(images[a:b], chunk_maps, model, batch_size, bar))

    def write(curves):
        scores = summarize(curves)
        save_npz(scores, out)
        return scores

    return store.finish(dist, write)


def results_row(out_id, scores) -> dict:
    """The results.csv row of an output's scores (values rounded to 6 places, SPEC)."""
    return {**out_id.csv_key(), "insertion": round(float(scores["ins"]), 6), "deletion": round(float(scores["del"]), 6)}


def run(args):
    """Write the scores file (unless it exists) and the results.csv row of the arguments' identity."""
    out_id = output_id(args)
    out = Path(args.prefix) / out_id.scores_file
    if out.exists():
        scores = load_npz(out)
        print(f"{out} exists; not recomputed")
    else:
        scores = compute_scores(args, out)
        if scores is None:  # not rank 0: rank 0 writes the row
            return
    row = results_row(out_id, scores)
    upsert_csv_row(args.csv_path, row)
    print(f"{row['model']} {row['attr_method']}: insertion {row['insertion']}, deletion {row['deletion']} -> {args.csv_path}")
