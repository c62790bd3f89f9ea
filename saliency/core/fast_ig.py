"""FastIG.

Hesse et al., "Fast Axiomatic Attribution for Neural Networks", NeurIPS 2021, arXiv 2111.07668.

As in the reference: x * d CE(p, target)/dx, where p is the probability model's output and the
cross-entropy applies log-softmax to it again (a double softmax). The loss is each image's own
(a per-row sum), so a map does not depend on its batch; the reference ran one image per batch.
"""
from __future__ import annotations

import torch

from .common import input_gradients, rows_per_call
from .params import protocol

DEFAULT_MAX_ROWS = 64


@protocol("FIG")
def fast_ig(model, images: torch.Tensor, target: torch.Tensor, *, max_rows: int | None = None) -> torch.Tensor:
    """x * d CE(model(x), target)/dx per image, float32, shaped like `images`.

    model: probability model. max_rows bounds how many images go through the model at once.
    """
    def log_softmax_of_probabilities(inputs):
        return torch.log_softmax(model(inputs), dim=1)

    # CE = -log_softmax(p)[target], so its gradient is minus that of the chosen score
    rows = rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)
    return -input_gradients(log_softmax_of_probabilities, images, target, rows) * images.detach().float()
