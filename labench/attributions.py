"""The attribution job behind generate_attributions.py: one method's maps for the cached
evaluation set, in resumable chunks, split across torchrun ranks."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from saliency import attribute
from saliency.core.common import predict

from .cli import bf16_maps, default_batch_size, load_inputs, method_of, method_params, output_id
from .errors import UserError
from .jobs import ChunkStore, Distributed
from .memory import auto_rows
from .models import exact_model
from .files import save_npy


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


def run(args):
    """Write the maps file named by the arguments' identity (nothing if it exists)."""
    method = method_of(args)
    if args.amp and not bf16_maps(args):
        print(f"note: {args.attr_method} maps stay fp32 under --amp (bf16 moves its AUCs by more than 0.005, "
              f"docs/PERFORMANCE.md); eval.py --amp still scores them in bf16", file=sys.stderr)
    images, labels, model, device = load_inputs(args, amp=bf16_maps(args))
    out = Path(args.prefix) / output_id(args).maps_file
    if existing_output_matches(out, len(images)):
        print(f"{out} exists; not recomputed")
        return
    batch_size = args.batch_size or default_batch_size(args.attr_method, args.model)
    params = method_params(args)
    # on CUDA, rows per model call fill the memory budget unless the user set --max_rows
    max_rows = args.max_rows or auto_rows(model, images.shape[1:], device, grad=True, rows_per_unit=method.rows_per_unit)
    settings = {"model": args.model, "weights": args.weights, "method": args.attr_method, "params": params,
                "seed": args.seed, "batch_size": batch_size, "images": list(images.shape), "amp": bf16_maps(args),
                "channels_last": args.channels_last, "max_rows": args.max_rows}
    store = ChunkStore(out, len(images), chunk_size(batch_size, args.chunk or 16), settings)
    dist = Distributed(device)
    todo = store.claim(dist)
    # --amp: the class a prediction-explaining method explains is decided in fp32 (models.exact_model)
    decide = bf16_maps(args) and method.explains_prediction
    with tqdm(total=sum(b - a for a, b in todo), desc=f"{args.attr_method} {args.model}", unit="img",
              disable=not dist.main) as bar:
        for first, last in todo:
            maps = []
            for start in range(first, last, batch_size):
                batch = slice(start, min(start + batch_size, last))
                x = images[batch].to(device)
                predicted = predict(exact_model(model), x) if decide else None
                maps.append(attribute(
                    args.attr_method, model, x, labels[batch].to(device), seed=args.seed, predicted=predicted,
                    indices=range(batch.start, batch.stop), reference_images=images, max_rows=max_rows, **params,
                ).cpu().contiguous())
                bar.update(batch.stop - batch.start)
            store.save(first, last, torch.cat(maps).numpy())

    def write(maps):
        save_npy(maps, out)
        return out

    if store.finish(dist, write):
        print(f"wrote {out}")
