"""MFABA: More Faithful and Accelerated Boundary-based Attribution.

Zhu et al., "MFABA: A More Faithful and Accelerated Boundary-based Attribution Method for Deep
Neural Networks", AAAI 2024, arXiv 2312.13630. docs/PROTOCOL.md, table row "mfaba".

From x_0 = x, sign steps lower the softmax probability of the target class:
x_{t+1} = clip(x + clip(x_t - alpha sign(g_t) - x, -epsilon, epsilon), 0, 1), g_t = d p_target/dx
at x_t, for up to max_iter steps; an image stops once its argmax is no longer the target (tested
after every step, as published). Attribution = -sum_t (x_{t+1} - x_t) * g_t. The published code
also computes g_T at the final state and then drops it (grads[:-1]); it is not computed here.
"""
from __future__ import annotations

import torch

from ..errors import SaliencyError
from .common import active_steps, output_grads, row_chunks, rows_per_call, softmax_of
from .params import COUNT, POSITIVE, Param, Range, protocol

DEFAULT_MAX_ROWS = 64


@protocol("MFABA", Param("epsilon", 0.3, Range(0)), Param("alpha", 0.001, POSITIVE), Param("max_iter", 50, COUNT))
def mfaba(
    model,
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    epsilon: float,
    alpha: float,
    max_iter: int,
    max_rows: int | None = None,
) -> torch.Tensor:
    """MFABA maps, float32, shaped like `images`.

    model: logit model on [0,1] images (softmax applied here). target: [N] classes explained
    (the labels). epsilon: half-width of the box around x, in [0,1] units (the published
    0.3 * 255 / 255). max_rows: images per model call.
    """
    images = _floating(images)
    target = torch.as_tensor(target).to(images.device).long().view(-1)
    if len(target) != len(images):
        raise SaliencyError(f"{len(target)} targets for {len(images)} images")
    maps = [
        _descend(model, images[part], target[part], float(epsilon), float(alpha), int(max_iter))
        for part in row_chunks(len(images), rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS))
    ]
    return torch.cat(maps).float()


def _floating(images):
    images = images.detach()
    return images if images.is_floating_point() else images.float()


def _descend(model, x, target, epsilon, alpha, max_iter):
    """The sign-step path of every image at once; images leave the batch when they stop."""
    score = softmax_of(model)
    state = x.clone()
    total = torch.zeros_like(x)
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for t, rows in active_steps(active, max_iter):
        scores, (grad,) = output_grads(score, state[rows], target[rows])
        if t > 0:  # the published early-stop test on x_t, the state reached by step t-1
            keep = scores.argmax(1) == target[rows]
            active[rows[~keep]] = False
            rows, grad = rows[keep], grad[keep]
            if rows.numel() == 0:
                break
        origin, current = x[rows], state[rows]
        moved = (current - alpha * grad.sign() - origin).clamp(-epsilon, epsilon)
        new = (origin + moved).clamp(0, 1)
        total[rows] -= (new - current) * grad
        state[rows] = new
    return total
