"""Local Attribution (LA).

Zhu et al., "Enhancing Model Interpretability with Local Attribution over Global Exploration",
ACM MM 2024, arXiv 2408.07736. SPEC section "LA".

Around each image x, a box of half-width x / spatial_range is explored S times: S-1 targeted
runs step towards drawn classes l (sign of d p_l/dx), one untargeted run steps away from the
predicted class c (sign of -d p_c/dx). Every step starts from x itself. Along each run the
attribution accumulates -d p_c/dx * (x_{t+1} - x); the map is the sum over the S runs.
"""
from __future__ import annotations

import torch

from ..errors import SaliencyError
from .common import (avoid_predicted, checked_classes, image_generator, image_indices, output_grads, per_image_plan,
                     predict, rows_per_call, softmax_of)

DEFAULT_MAX_ROWS = 128


def draw_la_classes(predicted: torch.Tensor, sampling_times: int, num_classes: int, seed: int, indices) -> torch.Tensor:
    """[N, S-1] targeted classes: S distinct draws per image from its own generator, the last
    one unused (the untargeted run takes its place)."""
    rows = []
    for c, index in zip(predicted.tolist(), image_indices(indices, len(predicted))):
        drawn = torch.randperm(num_classes, generator=image_generator(seed, index))[:sampling_times]
        rows.append(drawn[: sampling_times - 1])
    return torch.stack(rows).to(predicted.device)


def la(
    model,
    images: torch.Tensor,
    *,
    spatial_range: float = 20,
    max_iter: int = 20,
    sampling_times: int = 20,
    classes: torch.Tensor | None = None,
    predicted: torch.Tensor | None = None,
    seed: int = 0,
    indices=None,
    max_rows: int | None = None,
) -> torch.Tensor:
    """LA maps, float32, shaped like `images` (computed in the images' dtype).

    model: logit model on [0,1] images. classes: optional [N, S-1] targeted classes; by default
    they are drawn from a generator seeded by (seed, indices[i]). predicted: optional [N] class
    explained, c (default the model's argmax; --amp decides it in fp32). max_rows bounds how many
    explorations go through the model at once: whole images per call when max_rows >= S, else
    each image's S runs in fixed pieces of max_rows, so an image's numbers do not depend on
    its neighbours either way.
    """
    if spatial_range <= 0 or int(max_iter) < 1 or int(sampling_times) < 1:
        raise SaliencyError("LA needs spatial_range > 0, max_iter >= 1 and sampling_times >= 1")
    images = images.detach()
    n, s = len(images), int(sampling_times)
    with torch.no_grad():
        num_classes = model(images[:1]).shape[1]
    if s > num_classes:
        raise SaliencyError(f"sampling_times={s} exceeds the model's {num_classes} classes")
    predicted = predict(model, images) if predicted is None else checked_classes(predicted, n, images.device)
    if classes is None:
        classes = draw_la_classes(predicted.cpu(), s, num_classes, seed, indices).to(images.device)
    elif tuple(classes.shape) != (n, s - 1):
        raise SaliencyError(f"classes must be [N, sampling_times-1] = [{n}, {s - 1}], got {tuple(classes.shape)}")
    classes = avoid_predicted(classes.to(images.device).long(), predicted, num_classes)

    # column j < S-1 of an image's rows is a targeted run towards classes[:, j]; the last column
    # is the untargeted run (its "target" is c; its g_l is computed but unused)
    targets = torch.cat([classes, predicted.view(-1, 1)], dim=1)
    targeted = torch.arange(s, device=images.device) < s - 1
    maps = torch.zeros_like(images)
    for part, cols in per_image_plan(n, s, rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)):
        maps[part] += _explore(model, images[part], predicted[part], targets[part, cols], targeted[cols],
                               spatial_range, int(max_iter))
    return maps.float()


def _explore(model, x, predicted, targets, targeted, spatial_range, max_iter):
    """Runs of a few images as one batch of rows; targets [k, m], targeted [m]: which columns
    are targeted runs. Returns each image's sum of R over its m runs."""
    k, m = targets.shape
    shape = x.shape[1:]
    origin = x.repeat_interleave(m, dim=0)
    eps = origin / spatial_range
    c_rows = predicted.repeat_interleave(m)
    l_rows = targets.reshape(-1)
    targeted = targeted.repeat(k).view(-1, *[1] * len(shape))

    score = softmax_of(model)
    state = origin
    total = torch.zeros_like(origin)
    for _ in range(max_iter):
        _, (g_l, g_c) = output_grads(score, state, l_rows, c_rows)
        direction = torch.where(targeted, g_l.sign(), -g_c.sign())
        state = (origin + eps * direction).clamp(0, 1)
        total -= g_c * (state - origin)
    return total.view(k, m, *shape).sum(dim=1)
