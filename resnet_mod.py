"""ResNet-50 with functional ReLUs: the published DeepLIFT network, rebuilt (docs/PROTOCOL.md "Models").

The library's DeepLIFT no longer needs it (its nn.ReLU modules pass plain gradients on any
network); the tests hold the library's maps on torchvision's network against this one's.

torchvision's ResNet-50 with every ReLU replaced by `F.relu` (not in place) and the residual
sum done out of place; the layers, their names and the weights are torchvision's. captum's
DeepLift rewrites the gradients of nn.ReLU modules only, and torchvision's Bottleneck reuses one
nn.ReLU three times, which DeepLift cannot handle; with functional ReLUs, as in the reference,
the rescale rule applies only to max-pooling and the final Softmax, and ReLUs pass plain
gradients.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import Bottleneck, ResNet


class FunctionalReLU(nn.Module):
    """F.relu as a module that is not an nn.ReLU: captum's DeepLift leaves it alone."""

    def forward(self, x):
        return F.relu(x)


class FunctionalBottleneck(Bottleneck):
    """torchvision's Bottleneck with F.relu and an out-of-place residual sum."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.relu  # the shared nn.ReLU(inplace=True) module

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def resnet50_functional(num_classes: int = 1000) -> ResNet:
    """An untrained ResNet-50 of torchvision's layout with functional ReLUs, in eval mode."""
    net = ResNet(FunctionalBottleneck, [3, 4, 6, 3], num_classes=num_classes)
    net.relu = FunctionalReLU()  # the stem's ReLU
    return net.eval()


def from_torchvision(net: ResNet) -> ResNet:
    """A functional-ReLU copy of a torchvision ResNet-50 with the same weights."""
    if not isinstance(net, ResNet) or [len(layer) for layer in (net.layer1, net.layer2, net.layer3, net.layer4)] != [3, 4, 6, 3]:
        raise ValueError("resnet_mod.from_torchvision needs a torchvision resnet50")
    copy = resnet50_functional(num_classes=net.fc.out_features)
    copy.load_state_dict(net.state_dict(), strict=True)
    first = next(net.parameters())
    copy = copy.to(device=first.device, dtype=first.dtype)
    for p in copy.parameters():
        p.requires_grad_(False)
    return copy.train(net.training)


def functional_relu_model(logit_model: nn.Sequential) -> nn.Sequential:
    """Normalize -> functional-ReLU ResNet-50, from labench.nets.models.load_model('resnet50', ...)."""
    normalize, net = logit_model
    return nn.Sequential(normalize, from_torchvision(net)).eval()

