"""Score one method's maps by Insertion and Deletion (SPEC "Insertion and deletion").

    python eval.py --model efficientnet_lite0 --attr_method la

reads {attr_prefix}/<stem>_attributions.npy, writes {prefix}/<stem>_scores.npz (ins, del: AUCs
of the mean curves; ins_curve, del_curve: [225, N]) and
puts one row into --csv_path, replacing an earlier row of the same model, method and parameters.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from generate_attributions import add_common_arguments, load_inputs, maps_stem, stem
from jobs import ChunkStore, Distributed
from saliency.metric import GAMES, N_STEPS, InsertionDeletion, auc, default_batch_size, whole_curves
from saliency.core.common import predict
from utils import UserError, atomic_path, auto_rows, exact_model, load_npy, model_tag, probability_model, run_cli, upsert_csv_row


def curves_of(images, maps, model, batch_size, progress=None):
    """[N, 2, n_steps+1] float32: insertion then deletion curve of every image. The scored class
    is the fp32 argmax on the clean image, also under --amp (utils.exact_model)."""
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


def load_maps(args, images):
    maps = load_npy(Path(args.attr_prefix) / f"{maps_stem(args)}_attributions.npy", "attribution file")
    if maps.shape != tuple(images.shape):
        raise UserError(f"maps have shape {maps.shape} but the images {tuple(images.shape)}; "
                        "regenerate them with the same --data_dir and --limit")
    if not np.isfinite(maps).all():
        raise UserError("the attribution file holds NaN or infinite values; regenerate it")
    return maps


def compute_scores(args, out):
    """Curves chunk by chunk (resumable, split across torchrun ranks); rank 0 returns the scores."""
    images, _, model, device = load_inputs(args)
    maps = load_maps(args, images)
    # the user's --batch_size goes into the manifest: an automatic one may differ on resume
    settings = {"model": args.model, "weights": args.weights, "maps": str(Path(args.attr_prefix) / maps_stem(args)),
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
    dist.barrier()
    scores = None
    if dist.main:
        if not store.complete():
            raise UserError(f"some chunks in {store.folder} are missing (a rank failed?); rerun to finish them")
        scores = summarize(store.assemble())
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **scores)
        store.remove()
    dist.close()
    return scores


def load_scores(path: Path):
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except Exception:
        raise UserError(f"scores file {path} is corrupt; delete it and rerun") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--samples_number", "--sampling_times", dest="sampling_times", type=int, default=20,
                        help="LA: explorations per image (names the attribution file)")
    parser.add_argument("--prefix", default="scores", help="folder for the scores .npz")
    parser.add_argument("--attr_prefix", default="attributions", help="folder of the attribution .npy files")
    parser.add_argument("--csv_path", default="results.csv")
    parser.add_argument("--chunk", type=int, default=10, help="images per saved chunk (the unit of resume)")
    args = parser.parse_args(argv)

    out = Path(args.prefix) / f"{stem(args, args.amp)}_scores.npz"
    if out.exists():
        scores = load_scores(out)
        print(f"{out} exists; not recomputed")
    else:
        scores = compute_scores(args, out)
        if scores is None:  # not rank 0: rank 0 writes the row
            return
    la = args.attr_method == "la"
    row = {
        "model": model_tag(args.model, args.weights, args.amp, args.channels_last),
        "attr_method": args.attr_method,
        "spatial_range": args.spatial_range if la else "-",
        "max-iter": args.max_iter if la else "-",
        "samples_number": args.sampling_times if la else "-",
        "insertion": round(float(scores["ins"]), 6),
        "deletion": round(float(scores["del"]), 6),
    }
    upsert_csv_row(args.csv_path, row)
    print(f"{row['model']} {row['attr_method']}: insertion {row['insertion']}, deletion {row['deletion']} -> {args.csv_path}")


if __name__ == "__main__":
    run_cli(main)
