"""What the scripts share: their arguments, the identity of the output they name, and the run
set-up (device, data, model) after every argument is checked."""
from __future__ import annotations

import argparse

from saliency import SaliencyError, get_method
from saliency.saliency_zoo import PAPER_ORDER

from .data import load_dataset
from .errors import UserError
from .identity import OutputId
from .models import DEFAULT_MODEL, functional_relu_model, load_model, resolve_device, weights_tag, with_speed_modes


def add_common_arguments(parser):
    """Flags shared by generate_attributions.py and eval.py."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="model name (efficientnet_lite0, the paper's four, any torchvision classifier or timm model)")
    parser.add_argument("--weights", default="default",
                        help="'default', a torchvision weights name, 'random', or a state-dict checkpoint file")
    parser.add_argument("--attr_method", default="la", help=f"one of {', '.join(PAPER_ORDER)}")
    parser.add_argument("--spatial_range", type=int, default=20, help="LA: box half-width is x / spatial_range")
    parser.add_argument("--max_iter", type=int, default=20, help="LA: steps per exploration")
    parser.add_argument("--data_dir", default="data", help="folder with img_batch.pt and label_batch.pt")
    parser.add_argument("--batch_size", type=int, default=None, help="images per call (default: the published size)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--amp", action="store_true", help="opt-in: bf16 autocast (docs/PERFORMANCE.md: speed, AUC shift)")
    parser.add_argument("--channels_last", action="store_true", help="opt-in: channels_last memory format")


def attribution_parser(description=None):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sampling_times", type=int, default=20, help="LA: explorations per image")
    parser.add_argument("--prefix", default="attributions", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-image random generators")
    parser.add_argument("--max_rows", type=int, default=None,
                        help="rows (image x step/sample) per model call inside a method (default: on CUDA what fits "
                             "70%% of the free memory, measured; on a CPU the method's own)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="images per saved chunk, the unit of resume (default: whole batches, >= 16 images)")
    return parser


def eval_parser(description=None):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--samples_number", "--sampling_times", dest="sampling_times", type=int, default=20,
                        help="LA: explorations per image (names the attribution file)")
    parser.add_argument("--prefix", default="scores", help="folder for the scores .npz")
    parser.add_argument("--attr_prefix", default="attributions", help="folder of the attribution .npy files")
    parser.add_argument("--csv_path", default="results.csv")
    parser.add_argument("--chunk", type=int, default=10, help="images per saved chunk (the unit of resume)")
    return parser


def method_of(args):
    try:
        return get_method(args.attr_method)
    except SaliencyError as err:
        raise UserError(str(err)) from None


def method_params(args) -> dict:
    """The method's file parameters (LA's three) from the flags of the same names."""
    return {p: getattr(args, p) for p in method_of(args).file_params}


def modes(args) -> tuple:
    """The opt-in modes the flags ask for (labench.identity.MODES)."""
    return tuple(name for name, on in [("amp", args.amp), ("channels_last", args.channels_last)] if on)


def output_id(args) -> OutputId:
    """The identity of what the script writes (eval.py: the scores; .maps(): the maps)."""
    method_of(args)
    return OutputId.make(args.model, args.attr_method, weights_tag(args.weights), method_params(args), modes(args))


def bf16_maps(args) -> bool:
    """--amp computes the maps in bf16 only for methods whose AUCs it moves by at most 0.005;
    the others keep fp32 maps (and --amp speeds up their scoring alone)."""
    return args.amp and method_of(args).amp_maps


def default_batch_size(method, model):
    """The published batch size (halved for maxvit_t, except eg), but at least 8 images: the
    published batch of 1 for fast_ig, guided_ig and big only starved the device, and maps do not
    depend on the batch."""
    size = get_method(method).reference_batch
    size = max(1, size // 2) if model == "maxvit_t" and method != "eg" else size
    return max(size, 8)


def load_inputs(args, amp=None):
    """(images, labels, logit model, device) after checking every argument. amp: bf16 autocast
    (default: args.amp)."""
    method = method_of(args)
    device = resolve_device(args.device)
    images, labels = load_dataset(args.data_dir)
    if args.limit is not None:
        if args.limit < 1:
            raise UserError("--limit must be at least 1")
        images, labels = images[: args.limit], labels[: args.limit]
    model = load_model(args.model, weights=args.weights, device=device)
    if method.functional_relus:
        model = functional_relu_model(model, args.model)
    amp = args.amp if amp is None else amp
    model = with_speed_modes(model, amp=amp, channels_last=args.channels_last)
    return images, labels, model, device
