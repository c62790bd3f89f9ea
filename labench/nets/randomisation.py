"""The sanity checks' two changes (Adebayo et al., NeurIPS 2018, "Sanity Checks for Saliency
Maps"; docs/PROTOCOL.md "Sanity checks"): the model's parameters randomised from the top down in
CASCADE_STAGES stages, and another class explained.

Layers. A network's layers ("units") are read from its module tree, generically: the children
that hold parameters, in the order they are declared (the forward order of the networks here),
containers (nn.Sequential, nn.ModuleList, nn.ModuleDict) opened into their members, and a
wrapper that holds a single network (load_model's Normalize -> network) opened into that
network's layers. efficientnet_lite0: the stem convolution and its BatchNorm, the 16 blocks, the
head convolution and its BatchNorm, the classifier; resnet50: conv1, bn1, the 16 bottlenecks, fc;
vgg16: the 13 convolutions and the 3 linear layers. Parameters a network holds itself (a ViT's
class token) are a unit of their own, first.

Stages. Stage 1 randomises the head (the last unit); stage k randomises the last
1 + ceil((n - 1)(k - 1) / (K - 1)) of the n units, so growing groups of the last blocks, and
stage K every unit. A stage holds every unit of the stage before it, with the same values.

Values. Each parameter of a randomised unit (weights, biases, normalisation scales and shifts)
is redrawn elementwise from a Gaussian with the trained tensor's own mean and standard deviation,
so activations keep the trained network's scale and the randomised model is not saturated; a
constant tensor (an untrained normalisation layer's ones or zeros) is drawn with standard
deviation 1. Buffers (BatchNorm's running statistics) keep their trained values. Unit i's values
come from a generator seeded by (seed, i) on its own stream: they do not depend on the stage, the
device, the batch or torch's global random state, which is never touched. The randomised model
is a deep copy: the model given is left as it was.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

CASCADE_STAGES = 5
# stream tags: the sanity checks' generators never share a stream with the methods' per-image ones
UNIT_STREAM, LOGIT_STREAM = 1, 2
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def stream_generator(seed: int, stream: int, index: int) -> torch.Generator:
    """A CPU generator seeded by (seed, stream, index)."""
    state = np.random.SeedSequence([int(seed), int(stream), int(index)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


# ---------------------------------------------------------------- layers and stages


@dataclass(frozen=True)
class Unit:
    """One layer of the cascade: its module's name and the full names of the parameters it holds."""
    name: str
    parameters: tuple


def _holds_parameters(module) -> bool:
    return next(module.parameters(), None) is not None


def _units_of(module, prefix: str) -> list:
    own = tuple(prefix + name for name, _ in module.named_parameters(recurse=False))
    units = [Unit(prefix.rstrip(".") or "(model)", own)] if own else []
    for name, child in module.named_children():
        if not _holds_parameters(child):
            continue
        if isinstance(child, CONTAINERS):
            units += _units_of(child, f"{prefix}{name}.")
        else:
            units.append(Unit(prefix + name, tuple(f"{prefix}{name}.{p}" for p, _ in child.named_parameters())))
    return units


def layer_units(model: nn.Module) -> list:
    """The model's layers, input side first (the module docstring's rule)."""
    units = _units_of(model, "")
    while len(units) == 1 and units[0].name != "(model)":
        inner = model.get_submodule(units[0].name)
        opened = _units_of(inner, units[0].name + ".")
        if len(opened) < 2:
            break
        units = opened
    return units


def stage_size(n_units: int, stage: int, stages: int = CASCADE_STAGES) -> int:
    """How many of the last units stage `stage` (1..stages) randomises."""
    if not 1 <= stage <= stages:
        raise ValueError(f"stage must lie in 1..{stages}, got {stage}")
    if n_units < 1:
        raise ValueError("the model holds no parameters to randomise")
    return 1 + math.ceil((n_units - 1) * (stage - 1) / (stages - 1))


def stage_units(model: nn.Module, stage: int) -> list:
    """The units stage `stage` randomises, input side first."""
    units = layer_units(model)
    return units[len(units) - stage_size(len(units), stage):]


# ---------------------------------------------------------------- the randomised copy


def _redraw(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    values = tensor.detach().float()
    mean, std = float(values.mean()), float(values.std(correction=0))
    noise = torch.randn(tensor.shape, generator=generator)
    return (mean + (std if std > 0 else 1.0) * noise).to(dtype=tensor.dtype, device=tensor.device)


def randomised_model(model: nn.Module, stage: int, seed: int = 0) -> nn.Module:
    """A deep copy of `model` whose stage-`stage` units are randomised (module docstring)."""
    randomised = copy.deepcopy(model)
    units = layer_units(randomised)
    parameters = dict(randomised.named_parameters())
    first = len(units) - stage_size(len(units), stage)
    with torch.no_grad():
        for position in range(first, len(units)):
            generator = stream_generator(seed, UNIT_STREAM, position)
            for name in units[position].parameters:
                parameters[name].copy_(_redraw(parameters[name], generator))
    return randomised


# ---------------------------------------------------------------- another class


def random_other_classes(seed: int, indices, excluded: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[N] classes drawn uniformly among the num_classes - 1 classes other than excluded[i], for
    image indices[i] from a generator seeded by (seed, image index) on its own stream."""
    excluded = torch.as_tensor(excluded).long().view(-1).cpu()
    draws = [int(torch.randint(num_classes - 1, (1,), generator=stream_generator(seed, LOGIT_STREAM, i)))
             for i in indices]
    drawn = torch.tensor(draws, dtype=torch.long)
    return drawn + (drawn >= excluded).long()
