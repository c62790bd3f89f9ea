"""DeepLIFT (Rescale rule) through captum.

Shrikumar et al., "Learning Important Features Through Propagating Activation Differences",
ICML 2017, arXiv 1704.02685.

captum's DeepLift of p_target on the probability model from a zero baseline. captum's rule for
the final Softmax subtracts the mean multiplier over the whole batch, which makes a map depend
on the other images of its batch; here that mean is taken over each image's own row (and its
baseline row), which is exactly what captum computes for a batch of one image.

ReLUs pass plain gradients, as in the reference, whose ResNet-50 and VGG-16 call F.relu
(resnet_mod.py, vgg16_mod.py): captum's rules apply to max-pooling, the final Softmax and the
other non-linearities it knows, never to nn.ReLU modules. That gives the reference's maps on the
unmodified torchvision networks, and works on any network that reuses one nn.ReLU module
several times (torchvision's ResNets), which captum's own DeepLift refuses. ReLU6 (timm's
EfficientNet) is not a module captum rewrites either.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ..errors import SaliencyError
from .common import published_groups, row_chunks, rows_per_call
from .params import protocol

DEFAULT_MAX_ROWS = 32


def _plain_relu_deeplift_class():
    from captum.attr import DeepLift

    class PlainReLUDeepLift(DeepLift):
        """captum DeepLift whose rules skip nn.ReLU modules: ReLUs pass plain gradients."""

        def _is_non_linear(self, module):
            return type(module) is not nn.ReLU and super()._is_non_linear(module)

    return PlainReLUDeepLift


def _rowwise_deeplift_class():
    class RowwiseSoftmaxDeepLift(_plain_relu_deeplift_class()):
        """... whose Softmax multipliers are centred per image, not per batch."""

        def _backward_hook(self, module, grad_input, grad_output):
            if not isinstance(module, nn.Softmax):
                return super()._backward_hook(module, grad_input, grad_output)
            if not self.satisfies_attribute_criteria(module):
                raise RuntimeError(f"DeepLift lost the activations of {module}; is it used more than once in the network?")
            # rows are [inputs; baselines]; both halves get the differences input - baseline
            inputs, baselines = module.input.chunk(2)
            outputs, baseline_outputs = module.output.chunk(2)
            delta_in = torch.cat(2 * [inputs - baselines])
            delta_out = torch.cat(2 * [outputs - baseline_outputs])
            half = len(inputs)
            rescaled = torch.where(delta_in.abs() < self.eps, grad_input, grad_output * delta_out / delta_in)
            per_row = rescaled.reshape(len(rescaled), -1).mean(dim=1)
            per_image = (per_row[:half] + per_row[half:]) / 2
            centre = torch.cat([per_image, per_image]).view(-1, *[1] * (rescaled.ndim - 1))
            del module.input
            del module.output
            return rescaled - centre

    return RowwiseSoftmaxDeepLift


@protocol("DeepLIFT")
def deeplift(model, images: torch.Tensor, target: torch.Tensor, *, max_rows: int | None = None, indices=None,
             published: bool = False, group_size: int = 4) -> torch.Tensor:
    """DeepLift maps of p_target from a zero baseline, float32, shaped like `images`.

    model: probability model (any network: its nn.ReLU modules pass plain gradients, see the
    module docstring). max_rows bounds how many images go through
    captum at once (each image also runs its baseline). captum failures become SaliencyError.

    published=True runs captum's own DeepLift on each group of images at once, image i being in
    group indices[i] // group_size (default indices 0..N-1; a call holds whole groups), so the
    Softmax multipliers are centred over the group, as in the published batches of 4 (max_rows
    is then unused).
    """
    x = images.detach().float()
    target = torch.as_tensor(target, device=x.device).long().view(-1)
    if published:
        explainer = _plain_relu_deeplift_class()(model)
        parts = [torch.tensor(rows, device=x.device) for _, rows in published_groups(indices, len(x), group_size)]
    else:
        explainer = _rowwise_deeplift_class()(model)
        parts = row_chunks(len(x), rows_per_call(max_rows, x.device, DEFAULT_MAX_ROWS))
    maps = torch.empty_like(x)
    for part in parts:
        inputs = x[part].clone().requires_grad_(True)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Setting forward, backward hooks", category=UserWarning)
                with torch.enable_grad():
                    maps[part] = explainer.attribute(inputs, baselines=torch.zeros_like(inputs), target=target[part]).detach()
        except (RuntimeError, AssertionError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SaliencyError(
                f"captum DeepLift failed on this model ({type(err).__name__}: {first[:160]}); it needs every "
                "Softmax, MaxPool and other non-linear module (not nn.ReLU) used once and not in place"
            ) from None
    return maps
