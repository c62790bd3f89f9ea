"""Score one method's maps by Insertion and Deletion (SPEC "Insertion and deletion").

    python eval.py --model efficientnet_lite0 --attr_method la

reads {attr_prefix}/<stem>_attributions.npy, writes {prefix}/<stem>_scores.npz (ins, del: AUCs
of the mean curves; ins_curve, del_curve: [225, N]; classes: the scored class per image) and
puts one row into --csv_path, replacing an earlier row of the same model, method and parameters.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from generate_attributions import add_common_arguments, load_inputs, stem
from saliency.metric import InsertionDeletion, auc
from utils import UserError, atomic_path, load_npy, model_tag, probability_model, run_cli, upsert_csv_row


def score(images, maps, model, batch_size):
    """{'ins': AUC, 'del': AUC, 'ins_curve': [225, N], 'del_curve': [225, N]}."""
    metric = InsertionDeletion(probability_model(model), batch_size=batch_size)
    total = 2 * len(images) * (metric.n_steps + 1)
    with tqdm(total=total, desc="insertion/deletion", unit="img") as bar:
        curves = metric.curves(images, maps, progress=bar)
    result = {}
    for game, curve in curves.items():
        result[game] = np.float64(auc(curve.double().mean(dim=1)))
        result[f"{game}_curve"] = curve.numpy()
    return result


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
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or 100

    out = Path(args.prefix) / f"{stem(args)}_scores.npz"
    if out.exists():
        scores = load_scores(out)
        print(f"{out} exists; not recomputed")
    else:
        images, _, model, _ = load_inputs(args)
        maps = load_npy(Path(args.attr_prefix) / f"{stem(args)}_attributions.npy", "attribution file")
        if maps.shape != tuple(images.shape):
            raise UserError(f"maps have shape {maps.shape} but the images {tuple(images.shape)}; "
                            "regenerate them with the same --data_dir and --limit")
        maps = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
        if not torch.isfinite(maps).all():
            raise UserError("the attribution file holds NaN or infinite values; regenerate it")
        scores = score(images, maps, model, args.batch_size)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **scores)
    la = args.attr_method == "la"
    row = {
        "model": model_tag(args.model, args.weights),
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
