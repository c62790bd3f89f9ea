"""--fast: the same function, cheaper to evaluate (opt-in, tagged -fast in file names and rows).

A copy of the model (the user's model is untouched) in which
- every eval-mode BatchNorm that reads a convolution's output is folded into that convolution
  (torch.nn.utils.fusion.fuse_conv_bn_eval); the norm's own activation, if it carries one (timm's
  BatchNormAct2d), stays as its own module, so DeepLIFT's rules still see it;
- every TF-"SAME" convolution (timm's Conv2dSame, which computes its padding from the input's
  shape on each call) gets the padding of the fixed input size once: inside the convolution where
  it is symmetric, else one static ZeroPad2d in front (timm.layers.get_same_padding's amounts).

Which convolution feeds which norm is read from one forward pass with hooks (any architecture,
no graph surgery by name); the copy's logits are then checked against the original's on random
images, and a model whose copy disagrees is refused with the reason, never used.
"""
from __future__ import annotations

import copy
import shutil

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import UserError

# the copy's logits must equal the original's to float rounding: |difference| <= TOLERANCE * max |logit|
# (measured: 2.5e-7 resnet50 .. 2e-4 maxvit_t; a misplaced fold moves logits by their own size)
TOLERANCE = 1e-3


def _named(model, name):
    return model.get_submodule(name)


def _replace(model, name, module):
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _record_calls(model, image_shape):
    """[(name, kind, input tensor, output tensor)] of every convolution and BatchNorm call in one
    forward pass of a random image (kept alive, so tensor identity tells who feeds whom)."""
    calls, hooks = [], []
    for name, module in model.named_modules():
        kind = "conv" if isinstance(module, nn.Conv2d) else "norm" if isinstance(module, nn.BatchNorm2d) else None
        if kind is None:
            continue

        def hook(module, inputs, output, name=name, kind=kind):
            calls.append((name, kind, inputs[0], output))

        hooks.append(module.register_forward_hook(hook))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.rand(1, *image_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
    return calls


def conv_norm_pairs(calls):
    """(conv name, norm name) where a norm, called once, reads the output of a conv called once."""
    counts = {}
    for name, *_ in calls:
        counts[name] = counts.get(name, 0) + 1
    producer = {id(out): name for name, kind, _, out in calls if kind == "conv"}
    pairs = []
    for name, kind, inp, _ in calls:
        conv = producer.get(id(inp)) if kind == "norm" else None
        if conv is not None and counts[conv] == 1 and counts[name] == 1:
            pairs.append((conv, name))
    return pairs


def _after_norm(norm):
    """What stays of a folded norm: its activation (timm's BatchNormAct2d: drop then act), else nothing."""
    parts = [getattr(norm, attr) for attr in ("drop", "act") if isinstance(getattr(norm, attr, None), nn.Module)]
    parts = [p for p in parts if not isinstance(p, nn.Identity)]
    return nn.Sequential(*parts) if parts else nn.Identity()


def _static_same(conv, height, width):
    """A Conv2dSame as a plain Conv2d with the padding of a (height, width) input, fixed once."""
    from timm.layers import get_same_padding

    pad_h = get_same_padding(height, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
    pad_w = get_same_padding(width, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
    top, left = pad_h // 2, pad_w // 2
    symmetric = pad_h == 2 * top and pad_w == 2 * left
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      (top, left) if symmetric else 0, conv.dilation, conv.groups, conv.bias is not None)
    plain.weight, plain.bias = conv.weight, conv.bias
    if symmetric:
        return plain
    return nn.Sequential(nn.ZeroPad2d((left, pad_w - left, top, pad_h - top)), plain)


def _is_same_conv(module):
    try:
        from timm.layers import Conv2dSame
    except ImportError:
        return False
    return type(module) is Conv2dSame


def fast_model(model, image_shape, fold=True, static_padding=True):
    """The cheaper copy of `model` for [C, H, W] inputs of `image_shape` (module docstring) and
    what was done, e.g. {"folded": 49, "static_padding": 5}. fold / static_padding: each step can
    be left out (bench/fast_pass.py measures them one by one)."""
    if model.training:
        raise UserError("--fast folds eval-mode BatchNorm: the model must be in eval mode")
    fast = copy.deepcopy(model)
    calls = _record_calls(fast, image_shape)
    folded = 0
    for conv_name, norm_name in conv_norm_pairs(calls) if fold else []:
        conv, norm = _named(fast, conv_name), _named(fast, norm_name)
        if norm.running_mean is None or not (type(conv) is nn.Conv2d or _is_same_conv(conv)):
            continue  # batch statistics at eval time, or a conv that transforms its weight (StdConv)
        _replace(fast, conv_name, fuse_conv_bn_eval(conv, norm))
        _replace(fast, norm_name, _after_norm(norm))
        folded += 1
    sizes = {name: inp.shape[-2:] for name, kind, inp, _ in calls if kind == "conv"}
    same = [name for name, module in fast.named_modules() if static_padding and _is_same_conv(module) and name in sizes]
    for name in same:
        _replace(fast, name, _static_same(_named(fast, name), *sizes[name]))
    check_same_function(model, fast, image_shape)
    return fast, {"folded": folded, "static_padding": len(same)}


def check_same_function(model, fast, image_shape, n=2, seed=0):
    """Refuse a copy whose logits differ from the original's beyond float rounding."""
    device = next(model.parameters()).device
    x = torch.rand(n, *image_shape, generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    worst = float((got - expected).abs().max())
    if not worst <= TOLERANCE * float(expected.abs().max()):
        raise UserError(f"--fast changed this model's logits by up to {worst:.3g} (a BatchNorm whose convolution "
                        "output is also used elsewhere?); run without --fast")


# Forward rows a run must make before compiling pays: inductor took 1-1.5 min per input shape on
# this project's 2-core CPU and then saved ~5 ms per forward row (docs/PERFORMANCE.md, --fast).
COMPILE_MIN_ROWS = 20_000


def compiled_for_inference(model, example_shape, rows):
    """(model, note): under --fast, the model that only runs forwards (the metric) compiled with
    torch.compile where it pays: at least COMPILE_MIN_ROWS forward rows, a C compiler present for
    the CPU inductor, and a warm-up call of `example_shape` that succeeds; otherwise the model
    itself and a note saying why. Forward+backward passes stay uncompiled: compiled, they ran
    twice as slow on the CPU."""
    if rows < COMPILE_MIN_ROWS:
        return model, None
    device = next(model.parameters()).device
    if device.type == "cpu" and not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        return model, "note: --fast found no C compiler for torch.compile on the CPU; the metric runs uncompiled"
    try:
        compiled = torch.compile(model, dynamic=False)
        with torch.inference_mode():
            compiled(torch.zeros(example_shape, device=device))
    except Exception as err:  # a missing toolchain or an unsupported op surfaces at the first call
        return model, f"note: --fast could not compile the model ({type(err).__name__}); the metric runs uncompiled"
    return compiled, "note: --fast compiled the metric's model with torch.compile"
