"""What the library needs of a model, and the wrappers that make one.

Every method and the metric take the *logit model*: an nn.Module mapping images [N,C,H,W] in
[0, 1] to logits [N, classes], with its preprocessing inside. A torchvision or timm classifier
expects normalised inputs, so put its mean and std in front: `normalized(net, mean, std)`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel: the first layer of a logit model on [0, 1] images."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def normalized(net: nn.Module, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> nn.Sequential:
    """The logit model on [0, 1] images of a classifier that expects normalised inputs.

    Args:
        net: a classifier returning logits, e.g. `torchvision.models.resnet18(weights=...)`.
        mean, std: the per-channel statistics the classifier was trained with (default:
            ImageNet's, which torchvision's weights use; timm's are in `net.pretrained_cfg`).

    Returns:
        `nn.Sequential(Normalize(mean, std), net)` in eval mode; `net` is shared, not copied.
    """
    return nn.Sequential(Normalize(mean, std), net).eval()


def probability_model(logit_model: nn.Module) -> nn.Sequential:
    """The logit model followed by Softmax over classes, sharing the logit model's modules."""
    return nn.Sequential(logit_model, nn.Softmax(dim=1)).eval()
