"""The attribution job behind generate_attributions.py: one method's maps for the cached
evaluation set, in resumable chunks, split across torchrun ranks.

Under --published a method's images are coupled in groups of G consecutive global indices; the
batch size is then a multiple of G, so chunks (whole batches) and the chunks each rank takes hold
whole groups, and the maps do not depend on --batch_size, resume or sharding."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from saliency import attribute
from saliency.core.common import predict

from ..errors import UserError
from ..nets.models import exact_model
from ..nets.randomisation import random_other_classes
from ..spec.identity import RANDOM_LOGIT, SANITY, cascade_stage, declaration
from ..spec.run import Run
from ..store.files import check_output_folder, save_npy
from ..store.jobs import ChunkStore, Distributed
from .memory import auto_rows
from .progress import progress
from .setup import (bf16_maps, build_model, default_batch_size, load_inputs, method_of, output_id, published_batch_size,
                    published_group)


def existing_output_matches(path: Path, n: int) -> bool:
    if not path.exists():
        return False
    try:
        existing = np.load(path, mmap_mode="r")
    except Exception:
        raise UserError(f"{path} is corrupt; delete it and rerun") from None
    if len(existing) != n:
        raise UserError(f"{path} holds {len(existing)} maps but {n} images are asked for; delete it or use another --prefix")
    return True


def chunk_size(batch_size, minimum=16):
    """Images per saved chunk: whole batches, at least `minimum` images."""
    return batch_size * max(1, -(-minimum // batch_size))


def trained_reference(run: Run, method, device, image_shape):
    """Under a cascade stage, the trained model whose argmax la and agi keep explaining (the class
    stays that of the trained model's maps); else None."""
    if cascade_stage(run.modes) is None or not method.explains_prediction:
        return None
    trained = replace(run, modes=tuple(m for m in run.modes if declaration(m).group != SANITY))
    return build_model(trained, device, image_shape, amp=bf16_maps(run))


def explained_classes(run: Run, method, model, reference, x, labels, indices):
    """(targets, predicted) of one batch. By default the labels, and for la and agi (which explain a
    prediction) None, their own argmax, or under --amp the fp32 argmax (models.exact_model). Under a
    cascade stage la and agi explain the trained model's argmax (`reference`); under random_logit
    every method explains another class of each image than the one it explains on the model,
    drawn per image (labench.nets.randomisation.random_other_classes)."""
    if RANDOM_LOGIT.name in run.modes:
        with torch.no_grad():
            logits = exact_model(model)(x)
        explained = logits.argmax(1) if method.explains_prediction else labels
        other = random_other_classes(run.seed, indices, explained, logits.shape[1]).to(x.device)
        return other, (other if method.explains_prediction else None)
    if reference is not None:
        return labels, predict(exact_model(reference), x)
    decide = bf16_maps(run) and method.explains_prediction
    return labels, (predict(exact_model(model), x) if decide else None)


def run(run: Run):
    """Write the maps file named by the run's identity (nothing if it exists)."""
    method = method_of(run)
    if run.amp and not bf16_maps(run):
        print(f"note: {run.method} maps stay fp32 under --amp (bf16 moves its AUCs by more than 0.005, "
              f"docs/PERFORMANCE.md); eval.py --amp still scores them in bf16", file=sys.stderr)
    group = published_group(run)
    if run.published and group is None:
        print(f"note: {run.method} already computes as published; --published keeps its default maps "
              f"(eval.py --published still scores them with the published tie order)", file=sys.stderr)
    out = Path(run.maps_dir) / output_id(run).maps_file

    def check_output(images):  # the chunks and the joined file: twice the maps' bytes at most
        check_output_folder(run.maps_dir, 2 * images.numel() * 4)

    images, labels, model, device = load_inputs(run, amp=bf16_maps(run), before_model=check_output)
    if existing_output_matches(out, len(images)):
        print(f"{out} exists; not recomputed")
        return
    batch_size = run.batch_size or default_batch_size(run.method, run.model, device)
    # published groups are global indices // G: batches (and so chunks and shards) hold whole groups
    coupling = {}
    if group is not None:
        batch_size = published_batch_size(batch_size, group)
        coupling = {"published": True, "group_size": group}
    params = run.method_params
    # on CUDA, rows per model call fill the memory budget unless the user set --max_rows
    max_rows = run.max_rows or auto_rows(model, images.shape[1:], device, grad=True, rows_per_unit=method.rows_per_unit)
    settings = {"model": run.model, "weights": run.weights, "method": run.method, "params": params,
                "seed": run.seed, "batch_size": batch_size, "images": list(images.shape), "amp": bf16_maps(run),
                "channels_last": run.channels_last, "max_rows": run.max_rows, **coupling}
    dist = Distributed(device)
    reference = trained_reference(run, method, device, tuple(images.shape[1:]))
    with ChunkStore(out, len(images), chunk_size(batch_size, run.chunk or 16), settings) as store:
        todo = store.claim(dist)
        if todo is None:  # another process held the output and wrote it
            existing_output_matches(out, len(images))  # with as many maps as asked for
            return
        with progress(sum(b - a for a, b in todo), f"{run.method} {run.model}", "img",
                      disable=not dist.main) as bar:
            for first, last in todo:
                maps = []
                for start in range(first, last, batch_size):
                    batch = slice(start, min(start + batch_size, last))
                    x = images[batch].to(device)
                    indices = range(batch.start, batch.stop)
                    targets, predicted = explained_classes(run, method, model, reference, x,
                                                           labels[batch].to(device), indices)
                    maps.append(attribute(
                        run.method, model, x, targets, seed=run.seed, predicted=predicted, indices=indices,
                        reference_images=images, max_rows=max_rows, **coupling, **params,
                    ).cpu().contiguous())
                    bar.update(batch.stop - batch.start)
                store.save(first, last, torch.cat(maps).numpy())

        def write(maps):
            save_npy(maps, out)
            return out

        if store.finish(dist, write):
            print(f"wrote {out}")
