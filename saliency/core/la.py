"""Local Attribution (LA).

Zhu et al., "Enhancing Model Interpretability with Local Attribution over Global Exploration",
ACM MM 2024, arXiv 2408.07736. docs/PROTOCOL.md, section "LA".

Around each image x, a box of half-width x / spatial_range is explored S times: S-1 targeted
runs step towards drawn classes l (sign of d p_l/dx), one untargeted run steps away from the
predicted class c (sign of -d p_c/dx). Every step starts from x itself. Along each run the
attribution accumulates -d p_c/dx * (x_{t+1} - x); the map is the sum over the S runs.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import SaliencyError
from .common import (avoid_predicted, checked_classes, image_generator, image_indices, output_grads, per_image_plan,
                     predict, published_groups, rows_per_call, softmax_of, weighted_output_grads)
from .params import COUNT, POSITIVE, Param, Range, protocol

DEFAULT_MAX_ROWS = 128
PUBLISHED_SEED = 3407
PUBLISHED_NUM_CLASSES = 1000


def draw_la_classes(predicted: torch.Tensor, sampling_times: int, num_classes: int, seed: int, indices) -> torch.Tensor:
    """[N, S-1] targeted classes: S distinct draws per image from its own generator, the last
    one unused (the untargeted run takes its place)."""
    rows = []
    for c, index in zip(predicted.tolist(), image_indices(indices, len(predicted))):
        drawn = torch.randperm(num_classes, generator=image_generator(seed, index))[:sampling_times]
        rows.append(drawn[: sampling_times - 1])
    return torch.stack(rows).to(predicted.device)


@functools.lru_cache(maxsize=None)
def published_la_classes(sampling_times: int, group: int) -> tuple[int, ...]:
    """The S classes group b drew in the published runs: np.random.seed(3407) once per process,
    then one np.random.choice(1000, S, replace=False) per la() call, group b using the (b+1)-th.
    Replayed on a private RandomState (the global RNG is left alone)."""
    rng = np.random.RandomState(PUBLISHED_SEED)
    for _ in range(int(group) + 1):
        drawn = rng.choice(PUBLISHED_NUM_CLASSES, int(sampling_times), replace=False)
    return tuple(int(c) for c in drawn)


def _group_class_counts(classes: torch.Tensor, group_of_row: torch.Tensor, num_groups: int, num_classes: int,
                        dtype) -> torch.Tensor:
    """[num_groups, *classes.shape[1:], num_classes]: how often each class occurs in a group.

    classes: [N, ...] class ids; group_of_row: [N] group position of each row. Image i's
    published gradient of sum_j p_i[classes_j] (j over its group) is that of p_i @ counts."""
    onehot = torch.nn.functional.one_hot(classes.long(), num_classes).to(dtype)
    counts = torch.zeros((num_groups, *onehot.shape[1:]), dtype=dtype, device=classes.device)
    return counts.index_add_(0, group_of_row.to(classes.device), onehot)


def _published_setup(indices, n, s, num_classes, group_size, classes, device):
    """(position of each image's group among this call's groups [N], number of groups, the [N, S-1]
    published classes of each image's group, or the given classes)."""
    groups = published_groups(indices, n, group_size)
    position = torch.empty(n, dtype=torch.long)
    for k, (_, rows) in enumerate(groups):
        position[rows] = k
    if classes is None:
        if num_classes != PUBLISHED_NUM_CLASSES:
            raise SaliencyError(f"published LA draws from 1000 classes; the model has {num_classes} (pass classes=)")
        drawn = torch.tensor([published_la_classes(s, b)[: s - 1] for b, _ in groups], dtype=torch.long)
        classes = drawn[position].to(device)
    return position.to(device), len(groups), classes


@protocol("LA", Param("spatial_range", 20, POSITIVE), Param("max_iter", 20, COUNT),
          Param("sampling_times", 20, Range(1, 1000, integer=True)))
def la(
    model,
    images: torch.Tensor,
    *,
    spatial_range: float,
    max_iter: int,
    sampling_times: int,
    classes: torch.Tensor | None = None,
    predicted: torch.Tensor | None = None,
    seed: int = 0,
    indices=None,
    max_rows: int | None = None,
    published: bool = False,
    group_size: int = 64,
) -> torch.Tensor:
    """LA maps, float32, shaped like `images` (computed in the images' dtype).

    model: logit model on [0,1] images. classes: optional [N, S-1] targeted classes; by default
    they are drawn from a generator seeded by (seed, indices[i]). predicted: optional [N] class
    explained, c (default the model's argmax; --amp decides it in fp32). max_rows bounds how many
    explorations go through the model at once: whole images per call when max_rows >= S, else
    each image's S runs in fixed pieces of max_rows, so an image's numbers do not depend on
    its neighbours either way.

    published=True computes what the published scripts did (docs/PROTOCOL.md "As published"): image i is in
    group indices[i] // group_size (a call holds whole groups); the group shares one class list,
    the (b+1)-th np.random.choice(1000, S, replace=False) after np.random.seed(3407) (seed is
    unused; classes= still overrides it), and image i's gradients are d/dx_i of sum_j p_i[t_j]
    and sum_j p_i[c_j] over the images j of its group, for the step signs and the attribution.
    """
    images = images.detach()
    n, s = len(images), int(sampling_times)
    with torch.no_grad():
        num_classes = model(images[:1]).shape[1]
    if s > num_classes:
        raise SaliencyError(f"sampling_times={s} exceeds the model's {num_classes} classes")
    predicted = predict(model, images) if predicted is None else checked_classes(predicted, n, images.device)
    if published:
        position, num_groups, classes = _published_setup(indices, n, s, num_classes, group_size, classes, images.device)
    if classes is None:
        classes = draw_la_classes(predicted.cpu(), s, num_classes, seed, indices).to(images.device)
    elif tuple(classes.shape) != (n, s - 1):
        raise SaliencyError(f"classes must be [N, sampling_times-1] = [{n}, {s - 1}], got {tuple(classes.shape)}")
    classes = avoid_predicted(classes.to(images.device).long(), predicted, num_classes)

    # column j < S-1 of an image's rows is a targeted run towards classes[:, j]; the last column
    # is the untargeted run (its "target" is c; its g_l is computed but unused)
    targets = torch.cat([classes, predicted.view(-1, 1)], dim=1)
    targeted = torch.arange(s, device=images.device) < s - 1
    counts = _group_class_counts(targets, position, num_groups, num_classes, images.dtype) if published else None
    maps = torch.zeros_like(images)
    for part, cols in per_image_plan(n, s, rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)):
        weights = None
        if published:  # the untargeted column s-1 holds the counts of the group's predictions
            group_counts = counts[position[part]]
            weights = (group_counts[:, cols], group_counts[:, -1:].expand_as(group_counts[:, cols]))
        maps[part] += _explore(model, images[part], predicted[part], targets[part, cols], targeted[cols],
                               spatial_range, int(max_iter), weights)
    return maps.float()


def _explore(model, x, predicted, targets, targeted, spatial_range, max_iter, weights=None):
    """Runs of a few images as one batch of rows; targets [k, m], targeted [m]: which columns
    are targeted runs. weights: None (each row's own p_l and p_c) or the published coupling,
    ([k, m, K] class weights for p_l, [k, m, K] for p_c). Returns each image's sum of R over its
    m runs."""
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
    if weights is not None:
        weights = tuple(w.reshape(k * m, -1) for w in weights)
    for _ in range(max_iter):
        if weights is None:
            _, (g_l, g_c) = output_grads(score, state, l_rows, c_rows)
        else:
            _, (g_l, g_c) = weighted_output_grads(model, state, *weights, softmax=True)
        direction = torch.where(targeted, g_l.sign(), -g_c.sign())
        state = (origin + eps * direction).clamp(0, 1)
        total -= g_c * (state - origin)
    return total.view(k, m, *shape).sum(dim=1)
