"""What the scripts share: their arguments, the identity of the output they name, and the run
set-up (device, data, model) after every argument is checked."""
from __future__ import annotations

import argparse
import sys

from saliency import SaliencyError, get_method
from saliency.metric import ORDERS, SUBSTRATES
from saliency.saliency_zoo import PAPER_ORDER

from .data import load_dataset
from .errors import UserError
from .fast import fast_model
from .identity import OutputId
from .models import DEFAULT_MODEL, functional_relu_model, load_model, resolve_device, weights_tag, with_speed_modes
from .runtime import RUNTIMES


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
    parser.add_argument("--fast", action="store_true",
                        help="opt-in: the same function made cheaper (BatchNorm folded into its convolution, "
                             "TF-SAME padding fixed once; labench.fast), checked against the model's logits. "
                             "Tagged -fast: float rounding moves the maps")
    parser.add_argument("--published", action="store_true",
                        help="opt-in: what the published scripts computed (SPEC 'As published'): la, agi, deeplift "
                             "and eg couple the images of each group of consecutive indices; the metric orders "
                             "ties as NumPy's argsort. Tagged -published; never mixed with the default")


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
    parser.add_argument("--group_size", type=int, default=None,
                        help="with --published: images per coupled group (default: the published size, "
                             "64 for la/agi, 4 for deeplift/eg, halved on maxvit_t except eg). For tests and "
                             "studies: the file name does not record it, so give such runs their own --prefix")
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
    parser.add_argument("--substrate", choices=SUBSTRATES, default="black",
                        help="opt-in metric variant (SPEC 'Metric variants'): what deleted values become and "
                             "insertion starts from; blur is RISE's insertion substrate. Tagged -substrate_<name>")
    parser.add_argument("--order", choices=ORDERS, default="channel",
                        help="opt-in metric variant: channel ranks every C x H x W value (the paper's); pixel ranks "
                             "whole pixels by the sum of their channels (most peers). Tagged -order_pixel")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="opt-in, CPU only: the metric's forward passes in OpenVINO or ONNX Runtime (labench."
                             "runtime), converted once in float32 and checked against PyTorch's logits; otherwise "
                             "PyTorch with a note. Untagged: the same curves to float rounding (docs/PERFORMANCE.md)")
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
    flags = [("amp", args.amp), ("channels_last", args.channels_last), ("published", args.published),
             ("fast", getattr(args, "fast", False))]
    substrate, order = getattr(args, "substrate", "black"), getattr(args, "order", "channel")
    flags += [(f"substrate_{substrate}", substrate != "black"), (f"order_{order}", order != "channel")]
    return tuple(name for name, on in flags if on)


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
    return max(get_method(method).reference_batch_for(model), 8)


def published_group(args):
    """G under --published for a method with a published variant (--group_size or the published
    size), else None (the default computation: other methods already are as published)."""
    method = method_of(args)
    group, published = getattr(args, "group_size", None), getattr(args, "published", False)
    if group is not None and not published:
        raise UserError("--group_size applies only with --published")
    if not (published and method.has_published):
        return None
    if group is not None and group < 1:
        raise UserError("--group_size must be at least 1")
    return group or method.published_group(args.model)


def published_batch_size(batch_size, group):
    """The batch size as a whole number of groups (at least one): calls never split a group."""
    return group * max(1, -(-batch_size // group))


COUNT_FLAGS = ("batch_size", "max_rows", "chunk", "limit", "group_size")


def check_arguments(args):
    """Every argument checked before any data is read, any model built or any file written:
    counts >= 1, the method's parameters within their ranges (its registry entry), --group_size
    only with --published."""
    method = method_of(args)
    for flag in COUNT_FLAGS:
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be at least 1, got {value}")
    for name, value in method_params(args).items():  # the method's flags carry its parameters' names
        try:
            method.check_params({name: value})
        except SaliencyError as err:
            raise UserError(f"{err}: pass a valid --{name}") from None
    published_group(args)


def load_inputs(args, amp=None, before_model=None):
    """(images, labels, logit model, device) after checking every argument. amp: bf16 autocast
    (default: args.amp). before_model(images): the script's own checks of its inputs and outputs,
    run once the images are known and before the model is built."""
    method = method_of(args)
    check_arguments(args)
    device = resolve_device(args.device)
    images, labels = load_dataset(args.data_dir)
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    if before_model is not None:
        before_model(images)
    model = load_model(args.model, weights=args.weights, device=device)
    if method.functional_relus:
        model = functional_relu_model(model, args.model)
    if getattr(args, "fast", False):
        model, done = fast_model(model, tuple(images.shape[1:]))
        print(f"note: --fast folded {done['folded']} BatchNorms into their convolutions and fixed the padding of "
              f"{done['static_padding']} TF-SAME convolutions", file=sys.stderr)
    amp = args.amp if amp is None else amp
    model = with_speed_modes(model, amp=amp, channels_last=args.channels_last)
    return images, labels, model, device
