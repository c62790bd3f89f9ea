"""VGG-16 with functional ReLUs: the published DeepLIFT network, rebuilt (docs/PROTOCOL.md "Models").

The library's DeepLIFT no longer needs it (its nn.ReLU modules pass plain gradients on any
network); the tests hold the library's maps on torchvision's network against this one's.

torchvision's VGG-16 (same layers, names and weights) whose nn.ReLU(inplace=True) modules are
replaced by a module that calls F.relu out of place. captum's DeepLift then applies its rescale
rule only to max-pooling and the final Softmax, and ReLUs pass plain gradients, as in the
reference.
"""
from __future__ import annotations

import copy as _copy

import torch.nn as nn
from torchvision.models.vgg import VGG

from resnet_mod import FunctionalReLU


def replace_relu_modules(module: nn.Module) -> nn.Module:
    """Swap every nn.ReLU below `module` for FunctionalReLU, in place; returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, FunctionalReLU())
        else:
            replace_relu_modules(child)
    return module


def from_torchvision(net: VGG) -> VGG:
    """A functional-ReLU copy of a torchvision VGG with the same weights (the input is left as is)."""
    if not isinstance(net, VGG):
        raise ValueError("vgg16_mod.from_torchvision needs a torchvision VGG")
    return replace_relu_modules(_copy.deepcopy(net))


def functional_relu_model(logit_model: nn.Sequential) -> nn.Sequential:
    """Normalize -> functional-ReLU VGG-16, from labench.nets.models.load_model('vgg16', ...)."""
    normalize, net = logit_model
    return nn.Sequential(normalize, from_torchvision(net)).eval()

