"""Integrated Gradients (IG).

Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017, arXiv 1703.01365.

IG of p_target from a black (zero) baseline along the straight path, with captum's
"riemann_trapezoid" rule: the gradient is taken at alphas linspace(0, 1, n_steps), each weighted
1/n_steps except the two ends, weighted 1/(2 n_steps) (so the weights sum to (n-1)/n, as in
captum and the reference), and the sum is multiplied by (x - 0).
"""
from __future__ import annotations

import torch

from .common import output_grads, row_chunks, rows_per_call, trapezoid_rule
from .params import STEPS, Param, protocol

DEFAULT_MAX_ROWS = 64


def path_gradient_sum(model, x, target, points, weights, max_rows):
    """sum_s weights[s] * d model(points(s))[i, target_i] / d input, for every image i.

    points(s, i) gives the inputs of step s for images i (a LongTensor); the rows (image, step)
    go through the model in chunks of at most max_rows, image-major.
    """
    n, steps = len(x), len(weights)
    total = torch.zeros_like(x)
    weights = weights.to(x.device, x.dtype)
    for part in row_chunks(n * steps, max_rows):
        rows = torch.arange(part.start, part.stop, device=x.device)
        image, step = rows // steps, rows % steps
        _, (grad,) = output_grads(model, points(step, image), target[image])
        total.index_add_(0, image, grad * weights[step].view(-1, *[1] * (x.ndim - 1)))
    return total


@protocol("IG", Param("n_steps", 50, STEPS))
def ig(model, images: torch.Tensor, target: torch.Tensor, *, n_steps: int,
       max_rows: int | None = None) -> torch.Tensor:
    """IG maps of p_target, float32, shaped like `images`.

    model: probability model. All (image, step) rows are batched; max_rows bounds how many go
    through the model at once.
    """
    x = images.detach().float()
    target = torch.as_tensor(target, device=x.device).long().view(-1)
    alphas, weights = trapezoid_rule(n_steps)
    alphas = alphas.to(x.device, x.dtype)

    def points(step, image):
        return alphas[step].view(-1, *[1] * (x.ndim - 1)) * x[image]

    total = path_gradient_sum(model, x, target, points, weights, rows_per_call(max_rows, x.device, DEFAULT_MAX_ROWS))
    return total * x
