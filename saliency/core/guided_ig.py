"""Guided Integrated Gradients.

Kapishnikov, Venugopalan, Avci, Wedin, Terry and Birdal, "Guided Integrated Gradients: an
Adaptive Path Method for Removing Noise", CVPR 2021; the algorithm of the PAIR-code/saliency
implementation, as the published LA benchmark calls it. docs/PROTOCOL.md, table row "guided_ig".

The explained score is softmax(p)[target] where p is the probability model's output (softmax
applied a second time, as in the published benchmark), from a zero baseline. At step k of
n_steps the path point x must reach L1 distance l1_total * (1 - k/n_steps) from the input.
Every feature is first pulled up to alpha_min = k/n - max_dist of its straight-line range;
then, repeatedly, the features whose |gradient| is at most the `fraction` quantile ('lower'
rule, over all features, those already at alpha_max counted as +inf and never chosen) move
towards alpha_max: all the way if that is not enough, else by the fraction gamma that hits
the L1 target exactly. The attribution accumulates (x_new - x_old) * gradient at the step's
starting point. The gradient is taken once per step.

All images of a batch run together: every per-image decision (quantile, gamma, when an image's
inner loop ends) is made per row. The path is float64 as in the reference; the model sees the
path cast to the images' dtype (float32 in the reference).
"""
from __future__ import annotations

import math

import torch

from .common import output_grads, row_chunks, rows_per_call
from .params import COUNT, FRACTION, Param, protocol

DEFAULT_MAX_ROWS = 32
EPSILON = 1e-9  # closeness of the L1 distances, relative and absolute


@protocol("GIG", Param("n_steps", 15, COUNT), Param("fraction", 0.25, FRACTION), Param("max_dist", 0.02, FRACTION))
def guided_ig(
    model,
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    n_steps: int,
    fraction: float,
    max_dist: float,
    max_rows: int | None = None,
) -> torch.Tensor:
    """Guided IG maps, float32, shaped like `images`.

    model: probability model on [0,1] images. max_rows bounds the images per model call.
    """
    images = images.detach()
    target = target.to(images.device).long().view(-1)

    def score(z):
        return torch.softmax(model(z), dim=1)

    maps = []
    for part in row_chunks(len(images), rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)):
        x, t = images[part], target[part]

        def gradient(points, t=t):
            return output_grads(score, points.to(images.dtype), t)[1][0]

        flat = _guided_path(gradient, x.flatten(1), x.shape[1:], int(n_steps), float(fraction), float(max_dist))
        maps.append(flat.view_as(x))
    return torch.cat(maps).float()


def _guided_path(gradient, x_input, shape, steps, fraction, max_dist):
    """[k, D] float64 attributions for rows x_input (zero baseline); gradient([k,...]) -> [k,...]."""
    x_input = x_input.to(torch.float64)
    baseline = torch.zeros_like(x_input)
    diff = x_input - baseline
    moving = diff != 0
    l1_total = diff.abs().sum(dim=1)
    live = l1_total != 0  # an image equal to the baseline gets a zero map
    x = baseline.clone()
    attr = torch.zeros_like(x_input)
    k, d = x_input.shape
    rank = math.floor((d - 1) * fraction) + 1  # numpy's quantile, method 'lower', as a 1-based order statistic

    for step in range(steps):
        grad = gradient(x.view(k, *shape)).reshape(k, d)
        alpha = (step + 1.0) / steps
        alpha_min = max(alpha - max_dist, 0.0)
        alpha_max = min(alpha + max_dist, 1.0)
        x_max = baseline + diff * alpha_max
        l1_target = l1_total * (1 - (step + 1) / steps)
        start = x
        # Features that fell behind alpha_min jump to x_min (constant features count as ahead).
        # The reference re-checks this on every inner iteration; x only moves towards x_max
        # afterwards, so once per step is the same. Likewise the step's attribution, summed
        # over the inner iterations as (x_new - x_old) * grad, telescopes to (x_end - start) * grad.
        where_alpha = torch.where(moving, (x - baseline) / diff, alpha_max)
        x = torch.where(where_alpha < alpha_min, baseline + diff * alpha_min, x)

        active = live.clone()
        while True:
            l1_current = (x - x_input).abs().sum(dim=1)
            active &= ~_isclose(l1_target, l1_current)  # the image's L1 target is met
            if not active.any():
                break
            rows = slice(None) if active.all() else active.nonzero().squeeze(1)
            cur, top = x[rows], x_max[rows]
            # lowest |gradient| among the features not yet at x_max
            size = torch.where(cur == top, float("inf"), grad[rows].abs())
            threshold = size.kthvalue(rank, dim=1, keepdim=True).values
            chosen = (size <= threshold) & (size != float("inf"))
            l1_s = ((cur - top).abs() * chosen).sum(dim=1)
            over = l1_current[rows] - l1_target[rows]
            gamma = torch.where(l1_s > 0, over / l1_s, float("inf"))
            full = gamma > 1.0
            moved = torch.where(full.unsqueeze(1), top, cur + (top - cur) * gamma.unsqueeze(1))
            x[rows] = torch.where(chosen, moved, cur)
            # an image's inner loop ends when its L1 target is hit by a partial move; also when
            # nothing is left to select (the reference would loop forever there)
            done = ~full | ~chosen.any(dim=1)
            if isinstance(rows, slice):
                active &= ~done
            else:
                active[rows[done]] = False
        attr += (x - start) * grad.to(torch.float64)
    return attr


def _isclose(a, b):
    """math.isclose(a, b, rel_tol=EPSILON, abs_tol=EPSILON), element-wise."""
    tol = torch.maximum(EPSILON * torch.maximum(a.abs(), b.abs()), torch.full_like(a, EPSILON))
    return (a == b) | ((a - b).abs() <= tol)
