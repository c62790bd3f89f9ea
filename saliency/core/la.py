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
import math

import numpy as np
import torch

from ..errors import SaliencyError
from .common import (avoid_predicted, checked_classes, image_generator, image_indices, output_grads, per_image_plan,
                     predict, published_groups, row_chunks, rows_per_call, softmax_of, weighted_output_grads)
from .params import COUNT, POSITIVE, Param, Range, protocol

DEFAULT_MAX_ROWS = 128
# On a CPU the model calls take CPU_CALL_ROWS runs (the fastest on 2 cores, docs/PERFORMANCE.md "Against
# the published code"), and an image's runs are summed in pieces of CPU_SUM_ROWS columns, the calls of
# every map stored before LA packed its runs: the same sums, so the same maps to the bit
CPU_CALL_ROWS = 4
CPU_SUM_ROWS = 8
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
    explorations go through the model at once (default CPU_CALL_ROWS on a CPU, DEFAULT_MAX_ROWS
    elsewhere). The explorations of several images share calls (the untargeted ones in calls of
    their own, which need only p_c's gradient); each is an independent row, and an image's runs
    are summed in fixed pieces of columns, so its map does not depend on its neighbours.

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
    # is the untargeted run (its "target" is c)
    targets = torch.cat([classes, predicted.view(-1, 1)], dim=1)
    counts = _group_class_counts(targets, position, num_groups, num_classes, images.dtype) if published else None
    rows_per = rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS, cpu_default=CPU_CALL_ROWS)
    pieces = rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS, cpu_default=CPU_SUM_ROWS)
    maps = torch.zeros_like(images)
    for part in row_chunks(n, images_per_pass(n, s, rows_per, pieces)):
        weights = None
        if published:  # the untargeted column s-1 holds the counts of the group's predictions
            group_counts = counts[position[part]]
            weights = (group_counts, group_counts[:, -1:].expand_as(group_counts))
        runs = _run_totals(model, images[part], predicted[part], targets[part], spatial_range, int(max_iter), rows_per,
                           weights)
        # each image's runs summed in pieces of columns, as every stored map was (an image's map is the
        # same number whichever rows shared its model calls)
        for images_of, cols in per_image_plan(len(runs), s, pieces):
            maps[part][images_of] += runs[images_of, cols].contiguous().sum(dim=1)
    return maps.float()


def images_per_pass(n: int, s: int, rows: int, pieces: int) -> int:
    """Images whose runs are packed into model calls together: enough that their targeted runs fill
    whole calls of `rows` where that takes few images, and whole parts of per_image_plan(., s, pieces)."""
    whole_calls = rows // math.gcd(rows, max(s - 1, 1))
    return max(1, min(n, math.lcm(whole_calls, max(pieces // s, 1))))


def call_slices(count: int, rows: int) -> list[slice]:
    """Consecutive slices of at most `rows` covering range(count), never one of a single row after a
    longer one (the last two share their rows instead): a one-row call runs other kernels than a
    call of several rows, so its numbers would differ in the last bits."""
    slices = list(row_chunks(count, rows))
    if len(slices) > 1 and slices[-1].stop - slices[-1].start == 1 and rows > 2:
        start = slices[-2].start
        slices[-2:] = [slice(start, count - 2), slice(count - 2, count)]
    return slices


def _run_totals(model, x, predicted, targets, spatial_range, max_iter, rows, weights=None):
    """[k, S, *shape]: the attribution R of each of the S runs of k images.

    Every run's first step starts from x itself, so p_c's gradient there is one per image: it is
    computed once for the k images. The targeted runs (columns < S-1) of all k images go through
    the model together, `rows` rows per call, each call computing the gradients of p_l and p_c
    (p_l's only at the first step); the untargeted runs (the last column) go in calls of their
    own that compute only p_c's gradient (none at the first step). Runs are independent rows, so
    the packing is only a matter of speed. weights: None, or the published coupling as
    ([k, S, K] weights of p_l, [k, S, K] of p_c)."""
    k, s = targets.shape
    shape = x.shape[1:]
    image_of = torch.arange(k, device=x.device).repeat_interleave(s)
    column = torch.arange(s, device=x.device).repeat(k)
    flat_weights = tuple(w.reshape(k * s, -1) for w in weights) if weights is not None else None
    image_weights = None if weights is None else (weights[1][:, 0],)
    first_g_c = torch.cat([_gradients(model, x[images], (predicted[images],),
                                      None if image_weights is None else (image_weights[0][images],))[0]
                           for images in _calls(torch.arange(k, device=x.device), rows)])[:k]
    totals = torch.empty(k * s, *shape, dtype=x.dtype, device=x.device)
    for targeted in (True, False):
        runs = (column < s - 1).nonzero().view(-1) if targeted else (column == s - 1).nonzero().view(-1)
        for chosen_rows in _calls(runs, rows):
            run_weights = None if flat_weights is None else tuple(w[chosen_rows] for w in flat_weights)
            images = image_of[chosen_rows]
            totals[chosen_rows] = _explore(model, x[images], predicted[images], targets.reshape(-1)[chosen_rows],
                                           targeted, spatial_range, max_iter, run_weights, first_g_c[images])
    return totals.view(k, s, *shape)


def _calls(runs: torch.Tensor, rows: int):
    """The runs of each model call (call_slices); a lone run is computed beside a copy of itself, which
    the caller's indexed writes absorb (a one-row call runs other kernels than a call of several)."""
    for call in call_slices(len(runs), rows):
        chosen = runs[call]
        yield torch.cat([chosen, chosen]) if len(chosen) == 1 and rows > 1 else chosen


def _gradients(model, state, classes: tuple, weights: tuple | None):
    """The gradient at `state` of each row's softmax output in each class set of `classes`, one forward;
    with weights (the published coupling), of the weighted sums of softmax outputs instead."""
    if weights is None:
        return output_grads(softmax_of(model), state, *classes)[1]
    return weighted_output_grads(model, state, *weights, softmax=True)[1]


def _explore(model, origin, predicted, targets, targeted, spatial_range, max_iter, weights=None, first_g_c=None):
    """The attribution R of independent runs from the rows of `origin`, one model call per step.

    targeted: whether every row is a targeted run (step along sign(d p_l/dx), l = targets) or an
    untargeted one (against sign(d p_c/dx), c = predicted; targets unused, so p_l's gradient is not
    computed). weights: None (each row's own p_l and p_c) or the published coupling ([rows, K] class
    weights of p_l, [rows, K] of p_c). first_g_c: p_c's gradient at origin, given, so the first step
    computes p_l's gradient only (a targeted run) or nothing (an untargeted one). Returns [rows, *shape]."""
    eps = origin / spatial_range
    state = origin
    total = torch.zeros_like(origin)
    for step in range(max_iter):
        if step == 0 and first_g_c is not None:
            g_c = first_g_c
            g_l = _gradients(model, state, (targets,), weights and weights[:1])[0] if targeted else None
        elif targeted:
            g_l, g_c = _gradients(model, state, (targets, predicted), weights)
        else:
            (g_c,) = _gradients(model, state, (predicted,), weights and weights[1:])
            g_l = None
        direction = g_l.sign() if targeted else -g_c.sign()
        state = (origin + eps * direction).clamp(0, 1)
        total -= g_c * (state - origin)
    return total
