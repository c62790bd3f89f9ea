"""AGI: Adversarial Gradient Integration.

Pan et al., "Explaining Deep Neural Network Models with Adversarial Gradient Integration",
IJCAI 2021. SPEC table row "agi".

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
from .common import avoid_predicted, checked_classes, output_grads, per_image_plan, predict, rows_per_call, softmax_of

PUBLISHED_SEED = 3407
DEFAULT_MAX_ROWS = 128


def published_classes(topk: int = 20) -> list[int]:
    """The published class draw, random.seed(3407); random.sample(range(999), topk), from a
    private Random instance (the global RNG is left alone)."""
    return random.Random(PUBLISHED_SEED).sample(range(999), int(topk))


AGI_CLASSES = tuple(published_classes(20))


def agi(
    model,
    images: torch.Tensor,
    target=None,
    *,
    step_size: float = 0.05,
    max_iter: int = 20,
    topk: int = 20,
    classes=None,
    predicted: torch.Tensor | None = None,
    max_rows: int | None = None,
) -> torch.Tensor:
    """AGI maps, float32, shaped like `images`.

    model: logit model on [0,1] images (softmax applied here). target: ignored (AGI explains the
    prediction). classes: optional sequence of class ids shared by every image, replacing the
    published draw of `topk` classes (e.g. for models with fewer than 999 classes). predicted:
    optional [N] class explained, c (default the model's argmax; --amp decides it in fp32). max_rows
    bounds the (image, class) rows per model call; chunks hold whole images.
    """
    if step_size <= 0 or int(max_iter) < 1 or int(topk) < 1:
        raise SaliencyError("AGI needs step_size > 0, max_iter >= 1 and topk >= 1")
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
    for _ in range(max_iter):
        rows = active.nonzero().view(-1)
        if rows.numel() == 0:
            break
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
