"""Compute one method's attribution maps for the cached evaluation set.

    python generate_attributions.py --model efficientnet_lite0 --attr_method la

writes {prefix}/{model}_{method}_attributions.npy (LA: with its three parameters in the name),
float32 [N,3,224,224]. An existing output with the same images is not recomputed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from jobs import ChunkStore, Distributed
from saliency import saliency_zoo
from saliency.core.common import predict
from utils import (DEFAULT_MODEL, UserError, auto_rows, exact_model, load_dataset, load_model, model_tag, output_stem, resolve_device,
                   run_cli, save_npy, with_speed_modes)


def add_common_arguments(parser):
    """Flags shared by generate_attributions.py and eval.py."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name (utils.MODELS or any torchvision classifier)")
    parser.add_argument("--weights", default="default", help="'default', a torchvision weights name, or 'random'")
    parser.add_argument("--attr_method", default="la", help=f"one of {', '.join(saliency_zoo.PAPER_ORDER)}")
    parser.add_argument("--spatial_range", type=int, default=20, help="LA: box half-width is x / spatial_range")
    parser.add_argument("--max_iter", type=int, default=20, help="LA: steps per exploration")
    parser.add_argument("--data_dir", default="data", help="folder with img_batch.pt and label_batch.pt")
    parser.add_argument("--batch_size", type=int, default=None, help="images per call (default: the published size)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--amp", action="store_true", help="opt-in: bf16 autocast (docs/PERFORMANCE.md: speed, AUC shift)")
    parser.add_argument("--channels_last", action="store_true", help="opt-in: channels_last memory format")


def load_inputs(args, amp=None):
    """(images, labels, logit model, device) after checking every argument. amp: bf16 autocast
    (default: args.amp)."""
    saliency_zoo.get_method(args.attr_method)
    device = resolve_device(args.device)
    images, labels = load_dataset(args.data_dir)
    if args.limit is not None:
        if args.limit < 1:
            raise UserError("--limit must be at least 1")
        images, labels = images[: args.limit], labels[: args.limit]
    model = load_model(args.model, weights=args.weights, device=device)
    if args.attr_method == "deeplift" and args.model in ("resnet50", "vgg16"):
        # SPEC "Models": DeepLIFT runs on copies whose ReLUs are functional (same weights)
        import resnet_mod
        import vgg16_mod

        model = {"resnet50": resnet_mod, "vgg16": vgg16_mod}[args.model].functional_relu_model(model)
    amp = getattr(args, "amp", False) if amp is None else amp
    model = with_speed_modes(model, amp=amp, channels_last=getattr(args, "channels_last", False))
    return images, labels, model, device


def bf16_maps(args) -> bool:
    """--amp computes the maps in bf16 only for methods whose AUCs it moves by at most 0.005;
    the others keep fp32 maps (and --amp speeds up their scoring alone)."""
    return args.amp and saliency_zoo.get_method(args.attr_method).amp_maps


def stem(args, amp):
    tag = model_tag(args.model, args.weights, amp, args.channels_last)
    return output_stem(tag, args.attr_method, args.spatial_range, args.max_iter, args.sampling_times)


def maps_stem(args):
    """File stem of the attribution file: '-amp' only where the maps were computed in bf16."""
    return stem(args, bf16_maps(args))


def default_batch_size(method, model):
    """The published batch size (halved for maxvit_t, except eg), but at least 8 images: the
    published batch of 1 for fast_ig, guided_ig and big only starved the device, and maps do not
    depend on the batch."""
    size = saliency_zoo.get_method(method).reference_batch
    size = max(1, size // 2) if model == "maxvit_t" and method != "eg" else size
    return max(size, 8)


def method_params(args):
    if args.attr_method == "la":
        return {"spatial_range": args.spatial_range, "max_iter": args.max_iter, "sampling_times": args.sampling_times}
    return {}


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sampling_times", type=int, default=20, help="LA: explorations per image")
    parser.add_argument("--prefix", default="attributions", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-image random generators")
    parser.add_argument("--max_rows", type=int, default=None,
                        help="rows (image x step/sample) per model call inside a method (default: on CUDA what fits "
                             "70%% of the free memory, measured; on a CPU the method's own)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="images per saved chunk, the unit of resume (default: whole batches, >= 16 images)")
    args = parser.parse_args(argv)

    if args.amp and not bf16_maps(args):
        print(f"note: {args.attr_method} maps stay fp32 under --amp (bf16 moves its AUCs by more than 0.005, "
              f"docs/PERFORMANCE.md); eval.py --amp still scores them in bf16", file=sys.stderr)
    images, labels, model, device = load_inputs(args, amp=bf16_maps(args))
    out = Path(args.prefix) / f"{maps_stem(args)}_attributions.npy"
    if existing_output_matches(out, len(images)):
        print(f"{out} exists; not recomputed")
        return
    batch_size = args.batch_size or default_batch_size(args.attr_method, args.model)
    params = method_params(args)
    # on CUDA, rows per model call fill the memory budget unless the user set --max_rows
    max_rows = args.max_rows or auto_rows(model, images.shape[1:], device, grad=True,
                                          rows_per_unit=saliency_zoo.get_method(args.attr_method).rows_per_unit)
    settings = {"model": args.model, "weights": args.weights, "method": args.attr_method, "params": params,
                "seed": args.seed, "batch_size": batch_size, "images": list(images.shape), "amp": bf16_maps(args),
                "channels_last": args.channels_last, "max_rows": args.max_rows}
    store = ChunkStore(out, len(images), chunk_size(batch_size, args.chunk or 16), settings)
    dist = Distributed(device)
    todo = store.claim(dist)
    total = sum(b - a for a, b in todo)
    # --amp: the class a prediction-explaining method explains is decided in fp32 (utils.exact_model)
    decide = bf16_maps(args) and saliency_zoo.get_method(args.attr_method).takes("predicted")
    with tqdm(total=total, desc=f"{args.attr_method} {args.model}", unit="img", disable=not dist.main) as bar:
        for first, last in todo:
            maps = []
            for start in range(first, last, batch_size):
                batch = slice(start, min(start + batch_size, last))
                x = images[batch].to(device)
                predicted = predict(exact_model(model), x) if decide else None
                maps.append(saliency_zoo.attribute(
                    args.attr_method, model, x, labels[batch].to(device), seed=args.seed, predicted=predicted,
                    indices=range(batch.start, batch.stop), reference_images=images, max_rows=max_rows, **params,
                ).cpu().contiguous())
                bar.update(batch.stop - batch.start)
            store.save(first, last, torch.cat(maps).numpy())
    dist.barrier()
    if dist.main:
        if not store.complete():
            raise UserError(f"some chunks in {store.folder} are missing (a rank failed?); rerun to finish them")
        save_npy(store.assemble(), out)
        store.remove()
        print(f"wrote {out}")
    dist.close()


if __name__ == "__main__":
    run_cli(main)
