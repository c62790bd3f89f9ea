"""Saliency Map (SM).

Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image Classification Models
and Saliency Maps", ICLR workshop 2014, arXiv 1312.6034.

The map is |d p_target / dx| for the probability model (captum Saliency with abs=True in the
reference).
"""
from __future__ import annotations

import torch

from .common import input_gradients, rows_per_call
from .params import protocol

DEFAULT_MAX_ROWS = 64


@protocol("SM")
def sm(model, images: torch.Tensor, target: torch.Tensor, *, max_rows: int | None = None) -> torch.Tensor:
    """|d model(x)[i, target_i] / dx_i| per image, float32, shaped like `images`.

    model: probability model. max_rows bounds how many images go through the model at once.
    """
    return input_gradients(model, images, target, rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)).abs()
