"""AGI: Adversarial Gradient Integration.

Pan et al., "Explaining Deep Neural Network Models with Adversarial Gradient Integration",
IJCAI 2021. docs/PROTOCOL.md, table row "agi".

For each of a fixed set of classes l (drawn once, as published: random.seed(3407);
random.sample(range(999), 20)), with c the model's prediction on x (l is replaced by l+1, or l-1
for the last class, where it equals c): x_0 = x and, for t < max_iter, if argmax(x_t) = l the
image stops; else x_{t+1} = clip(x + step_size sign(d p_l/dx at x_t), 0, 1) and the map gains
-d p_c/dx at x_t * (x_{t+1} - x). Every step moves from x itself. The map is the plain sum over
the classes (the published code does not normalise the per-class results). The label is not used.
"""
from __future__ import annotations

import random

import torch

from ..errors import SaliencyError
from .common import (active_steps, avoid_predicted, checked_classes, output_grads, per_image_plan, predict, published_groups,
                     row_chunks, rows_per_call, softmax_of, weighted_output_grads)
from .params import COUNT, POSITIVE, Param, Range, protocol

PUBLISHED_SEED = 3407
DEFAULT_MAX_ROWS = 128


def published_classes(topk: int = 20) -> list[int]:
    """The published class draw, random.seed(3407); random.sample(range(999), topk), from a
    private Random instance (the global RNG is left alone)."""
    return random.Random(PUBLISHED_SEED).sample(range(999), int(topk))


AGI_CLASSES = tuple(published_classes(20))


@protocol("AGI", Param("step_size", 0.05, POSITIVE), Param("max_iter", 20, COUNT),
          Param("topk", 20, Range(1, 999, integer=True)))
def agi(
    model,
    images: torch.Tensor,
    target=None,
    *,
    step_size: float,
    max_iter: int,
    topk: int,
    classes=None,
    predicted: torch.Tensor | None = None,
    max_rows: int | None = None,
    indices=None,
    published: bool = False,
    group_size: int = 64,
) -> torch.Tensor:
    """AGI maps, float32, shaped like `images`.

    model: logit model on [0,1] images (softmax applied here). target: ignored (AGI explains the
    prediction). classes: optional sequence of class ids shared by every image, replacing the
    published draw of `topk` classes (e.g. for models with fewer than 999 classes). predicted:
    optional [N] class explained, c (default the model's argmax; --amp decides it in fp32). max_rows
    bounds the (image, class) rows per model call; chunks hold whole images.

    published=True computes what the published scripts did (docs/PROTOCOL.md "As published"): image i is in
    group indices[i] // group_size (default indices 0..N-1; a call holds whole groups); image i's
    gradients are d/dx_i of sum_j p_i[l_j] and sum_j p_i[c_j] over the images j of its group,
    and images stop with the published leave_index bookkeeping (see _retire_published).
    """
    images = images.detach()
    if not images.is_floating_point():
        images = images.float()
    with torch.no_grad():
        num_classes = model(images[:1]).shape[1]
    classes = published_classes(topk) if classes is None else [int(c) for c in torch.as_tensor(classes).view(-1).tolist()]
    if not classes or min(classes) < 0 or max(classes) >= num_classes:
        raise SaliencyError(f"AGI classes must lie in 0..{num_classes - 1} (the model's classes); "
                         f"pass classes= for a model with fewer than 1000 classes")
    predicted = predict(model, images) if predicted is None else checked_classes(predicted, len(images), images.device)
    maps = torch.zeros_like(images)
    if published:
        rows_per = rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)
        for _, rows in published_groups(indices, len(images), group_size):
            rows = torch.tensor(rows, device=images.device)
            maps[rows] = _integrate_group(model, images[rows], predicted[rows], classes, num_classes, float(step_size),
                                          int(max_iter), rows_per)
        return maps.float()
    for part, cols in per_image_plan(len(images), len(classes), rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)):
        maps[part] += _integrate(model, images[part], predicted[part], classes[cols], num_classes, float(step_size),
                                 int(max_iter))
    return maps.float()


def _integrate(model, x, predicted, classes, num_classes, step_size, max_iter):
    """All (image, class) explorations of a few images as one batch of rows."""
    n, k = len(x), len(classes)
    origin = x.repeat_interleave(k, dim=0)
    c_rows = predicted.repeat_interleave(k)
    l_rows = avoid_predicted(torch.tensor(classes, dtype=torch.long, device=x.device).repeat(n), c_rows, num_classes)

    score = softmax_of(model)
    state = origin.clone()
    total = torch.zeros_like(origin)
    active = torch.ones(len(origin), dtype=torch.bool, device=x.device)
    for _, rows in active_steps(active, max_iter):
        scores, (g_l, g_c) = output_grads(score, state[rows], l_rows[rows], c_rows[rows])
        keep = scores.argmax(1) != l_rows[rows]  # reached l at x_t: stop before stepping
        active[rows[~keep]] = False
        rows, g_l, g_c = rows[keep], g_l[keep], g_c[keep]
        if rows.numel() == 0:
            break
        start = origin[rows]
        new = (start + step_size * g_l.sign()).clamp(0, 1)
        total[rows] -= g_c * (new - start)
        state[rows] = new
    return total.view(n, k, *x.shape[1:]).sum(dim=1)


def _retire_published(leave: list[int], reached: dict[int, bool]) -> None:
    """The published stop bookkeeping, kept as it was: items are removed from `leave` while
    iterating over it, so the item after a removed one is not looked at in this iteration."""
    for j in leave:  # mutating the list being iterated is the published behaviour
        if reached[j]:
            leave.remove(j)


def _integrate_group(model, x, predicted, classes, num_classes, step_size, max_iter, max_rows):
    """The published pgd_step for one group (its images in index order), class by class.

    Per class, the group's per-image targets l_j and predictions c_j give the coupled gradients
    (one class-count vector each). At each iteration the images still in the published
    leave_index list are checked (argmax of the logits == own l_j) and retired with its
    bookkeeping; at the first iteration every image accumulates (the published c_delta = delta),
    later only the images left in the list. Model calls take at most max_rows rows.
    """
    n = len(x)
    c_weights = torch.bincount(predicted, minlength=num_classes).to(x.dtype)
    total = torch.zeros_like(x)
    for l in classes:
        l_rows = avoid_predicted(torch.full_like(predicted, l), predicted, num_classes)
        l_weights = torch.bincount(l_rows, minlength=num_classes).to(x.dtype)
        state = x.clone()
        leave = list(range(n))
        for step in range(max_iter):
            rows = torch.tensor(leave, dtype=torch.long, device=x.device)
            logits, g_l, g_c = _group_grads(model, state[rows], l_weights, c_weights, max_rows)
            reached = dict(zip(leave, (logits.argmax(1) == l_rows[rows]).tolist()))
            _retire_published(leave, reached)
            if not leave:
                break  # (the published code would fail here at the first iteration; nothing is added)
            left = set(leave)
            keep = torch.tensor([step == 0 or j in left for j in rows.tolist()], device=x.device)
            rows, g_l, g_c = rows[keep], g_l[keep], g_c[keep]
            start = x[rows]
            new = (start + step_size * g_l.sign()).clamp(0, 1)
            total[rows] -= g_c * (new - start)
            state[rows] = new
    return total


def _group_grads(model, x, l_weights, c_weights, max_rows):
    """(logits, g_l, g_c) of rows x, at most max_rows rows per model call."""
    parts = [weighted_output_grads(model, x[part], l_weights, c_weights, softmax=True)
             for part in row_chunks(len(x), max_rows)]
    return (torch.cat([logits for logits, _ in parts]), torch.cat([g[0] for _, g in parts]),
            torch.cat([g[1] for _, g in parts]))
