"""Mechanics every method shares: per-image random generators, gradients of one output per
row, the plan of rows per model call, the trapezoid rule and the predicted-class replacement."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import SaliencyError


def image_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator seeded by (seed, image index).

    Every random draw for image `index` comes from here, so a map never depends on batch size,
    image order, resume point or sharding. Draw on the CPU and move the result: CPU and CUDA
    generators give different streams.
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def image_indices(indices, n: int) -> list[int]:
    """Global image indices of a batch (default 0..n-1), checked against its length."""
    if indices is None:
        return list(range(n))
    indices = [int(i) for i in (indices.tolist() if torch.is_tensor(indices) else indices)]
    if len(indices) != n:
        raise SaliencyError(f"{len(indices)} image indices for {n} images")
    return indices


def output_grads(score_fn, x: torch.Tensor, *class_sets: torch.Tensor):
    """Scores and, for each class set, d score[i, classes[i]] / d x[i] for every row i.

    Rows of `x` are independent in an eval-mode model, so the gradient of the sum over rows
    is each row's own gradient. One forward serves all class sets.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = score_fn(x)
        grads = []
        for k, classes in enumerate(class_sets):
            chosen = scores.gather(1, classes.view(-1, 1).to(scores.device)).sum()
            grads.append(torch.autograd.grad(chosen, x, retain_graph=k + 1 < len(class_sets))[0])
    return scores.detach(), grads


def input_gradients(score_fn, images: torch.Tensor, target, max_rows: int) -> torch.Tensor:
    """d score_fn(x)[i, target_i] / dx_i for every image, float32, max_rows images per model call."""
    x = images.detach().float()
    target = torch.as_tensor(target, device=x.device).long().view(-1)
    grads = torch.empty_like(x)
    for part in row_chunks(len(x), max_rows):
        _, (grads[part],) = output_grads(score_fn, x[part], target[part])
    return grads


def active_steps(active: torch.Tensor, max_iter: int):
    """(t, rows still active) for t < max_iter, until no row is active; the caller clears `active`."""
    for t in range(int(max_iter)):
        rows = active.nonzero().view(-1)
        if rows.numel() == 0:
            return
        yield t, rows


def softmax_of(model):
    """x -> softmax(model(x)) for methods given the logit model."""
    return lambda x: torch.softmax(model(x), dim=1)


def row_chunks(n: int, size: int):
    """Slices covering range(n) in pieces of at most `size`."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def per_image_plan(n: int, per_image: int, max_rows: int):
    """[(images, columns)] slices covering n images x per_image rows, max_rows rows per model call.

    Whole images per call where max_rows >= per_image; else one image per call, its columns in
    fixed pieces of max_rows. Either way an image's rows meet the same neighbours in every batch
    layout of the images, so its numbers do not depend on how the images were batched.
    """
    per_image, max_rows = int(per_image), max(1, int(max_rows))
    if max_rows >= per_image:
        return [(part, slice(0, per_image)) for part in row_chunks(n, max_rows // per_image)]
    return [(slice(i, i + 1), cols) for i in range(n) for cols in row_chunks(per_image, max_rows)]


def trapezoid_rule(n_steps: int):
    """(alphas, weights), float32 CPU tensors of length n_steps: captum's riemann_trapezoid.

    alphas = linspace(0, 1, n), weights 1/n with both ends halved (they sum to (n-1)/n, as in
    captum and the reference), rounded to float32 as captum does.
    """
    n = int(n_steps)
    if n < 2:
        raise SaliencyError(f"the trapezoid rule needs at least 2 steps, got {n}")
    weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
    weights[0] /= 2
    weights[-1] /= 2
    return torch.linspace(0, 1, n), weights.float()


def avoid_predicted(classes: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Targets equal to an image's predicted class c become c+1 (c-1 for the last class).

    classes: [N] or [N, K] class ids; predicted: [N]."""
    c = predicted.view(-1, *[1] * (classes.dim() - 1)).expand_as(classes)
    neighbour = torch.where(c == num_classes - 1, c - 1, c + 1)
    return torch.where(classes == c, neighbour, classes)


def checked_classes(classes, n: int, device) -> torch.Tensor:
    """[n] long class ids on `device`, or a ValueError naming the mismatch."""
    classes = torch.as_tensor(classes).to(device).long().view(-1)
    if len(classes) != n:
        raise SaliencyError(f"{len(classes)} classes for {n} images")
    return classes


@torch.no_grad()
def predict(model, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Argmax class of every image, batched."""
    return torch.cat([model(images[s]).argmax(1) for s in row_chunks(len(images), batch_size)])


# Rows per model call when a method is not told: on a CPU small batches run closest to the
# hardware's limit (bench/roofline.py: efficientnet_lite0 on 2 cores is best at 4-16 rows and
# loses a third at 40+); on a GPU each method's own default, which fills the device.
CPU_ROWS = 8


def rows_per_call(max_rows, device, default: int, cpu_default: int | None = None) -> int:
    """max_rows when given; else cpu_default (CPU_ROWS unless named) on a CPU, `default` elsewhere."""
    if max_rows:
        return int(max_rows)
    return (cpu_default or CPU_ROWS) if torch.device(device).type == "cpu" else default


# --- the published grouping (opt-in published=True; docs/PROTOCOL.md "As published") ---

def published_groups(indices, n: int, group_size) -> list[tuple[int, list[int]]]:
    """[(group id b, rows of this call in group b)] where image i is in group i // group_size.

    The published scripts coupled the images of each batch; here a batch is a fixed group of
    global indices, so a call must hold each of its groups from the group's first image on, in
    index order (a short group is allowed: the dataset's last one, or a --limit cut).
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise SaliencyError(f"group_size must be an integer >= 1, got {group_size!r}")
    size = int(group_size)
    members: dict[int, list[tuple[int, int]]] = {}
    for row, index in enumerate(image_indices(indices, n)):
        members.setdefault(index // size, []).append((row, index))
    groups = []
    for b, rows in members.items():
        if [index for _, index in rows] != list(range(b * size, b * size + len(rows))):
            raise SaliencyError(f"published mode needs whole groups of {size} images in index order; group {b} "
                                f"has indices {[index for _, index in rows]}")
        groups.append((b, [row for row, _ in rows]))
    return groups


def weighted_output_grads(model, x: torch.Tensor, *weight_sets: torch.Tensor, softmax: bool):
    """Model outputs and, for each weight set W ([rows, K] or [K]), d sum_k W[i, k] s[i, k] / d x[i]
    for every row i, where s = softmax(model(x)) if softmax else model(x). One forward serves all
    weight sets; rows are independent in an eval-mode model."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        outputs = model(x)
        scores = torch.softmax(outputs, dim=1) if softmax else outputs
        grads = []
        for k, weights in enumerate(weight_sets):
            chosen = (scores * weights.to(scores.device, scores.dtype)).sum()
            grads.append(torch.autograd.grad(chosen, x, retain_graph=k + 1 < len(weight_sets))[0])
    return outputs.detach(), grads
