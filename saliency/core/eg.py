"""Expected Gradients (EG).

Erion et al., "Improving performance of deep learning models with axiomatic attribution priors
and expected gradients", Nature Machine Intelligence 2021, arXiv 1906.10670.

One reference per image, drawn at random from the evaluation set, and one alpha ~ U(0, 1):
the map is (x - ref) * d p_target/dx at ref + alpha (x - ref). Image i explains its own
output[i, target_i] (the reference differentiates output[0, i]; see docs/DEVIATIONS.md).
"""
from __future__ import annotations

import torch

from ..errors import SaliencyError
from .common import (image_generator, image_indices, output_grads, published_groups, row_chunks, rows_per_call,
                     weighted_output_grads)
from .params import protocol

DEFAULT_MAX_ROWS = 64


def draw_eg_references(num_references: int, seed: int, indices):
    """(reference positions [N] long, alphas [N] float32), CPU, one draw per image index."""
    positions, alphas = [], []
    for index in indices:
        gen = image_generator(seed, index)
        positions.append(int(torch.randint(int(num_references), (1,), generator=gen)))
        alphas.append(float(torch.rand((), generator=gen)))
    return torch.tensor(positions, dtype=torch.long), torch.tensor(alphas, dtype=torch.float32)


@protocol("EG")
def eg(model, images: torch.Tensor, target: torch.Tensor, *, seed: int = 0, indices=None,
       reference_images: torch.Tensor | None = None, max_rows: int | None = None, published: bool = False,
       group_size: int = 4) -> torch.Tensor:
    """EG maps of p_target, float32, shaped like `images`.

    model: probability model. reference_images: the whole evaluation set [M,3,H,W] (any device);
    without it the references come from the batch itself (then a map depends on its batch).
    The reference and alpha of image i come from image_generator(seed, indices[i]).

    published=True reproduces the published gather bug (docs/PROTOCOL.md "As published"): image i is in group
    indices[i] // group_size (a call holds whole groups); the group's first image explains the
    sum of its own scores for classes 0..m-1 (m = the group's size; target is unused) and the
    other images of the group get zero maps. References and alphas are drawn as by default.
    """
    x = images.detach().float()
    n = len(x)
    target = torch.as_tensor(target, device=x.device).long().view(-1)
    if reference_images is None and n < 2:
        raise SaliencyError("eg draws each image's reference from reference_images (the evaluation set); without it "
                            "from the batch, and an image alone is its own reference (an all-zero map): pass "
                            "reference_images=")
    pool = x if reference_images is None else reference_images
    if pool.ndim != x.ndim or tuple(pool.shape[1:]) != tuple(x.shape[1:]) or len(pool) == 0:
        raise SaliencyError(f"reference_images must be [M,{','.join(map(str, x.shape[1:]))}], got {tuple(pool.shape)}")
    positions, alphas = draw_eg_references(len(pool), seed, image_indices(indices, n))
    refs = pool[positions.to(pool.device)].detach().to(x.device, torch.float32)
    alphas = alphas.to(x.device).view(-1, *[1] * (x.ndim - 1))
    delta = x - refs
    if published:
        return _published_maps(model, x, refs + alphas * delta, delta, published_groups(indices, n, group_size),
                               rows_per_call(max_rows, x.device, DEFAULT_MAX_ROWS))
    maps = torch.empty_like(x)
    for part in row_chunks(n, rows_per_call(max_rows, x.device, DEFAULT_MAX_ROWS)):
        _, (grad,) = output_grads(model, refs[part] + alphas[part] * delta[part], target[part])
        maps[part] = delta[part] * grad
    return maps


def _published_maps(model, x, points, delta, groups, max_rows):
    """Zero maps except each group's first image: delta * d sum_{k<m} model(point)[k] / d point."""
    firsts = torch.tensor([rows[0] for _, rows in groups], dtype=torch.long, device=x.device)
    sizes = torch.tensor([len(rows) for _, rows in groups], device=x.device)
    with torch.no_grad():
        num_classes = model(points[:1]).shape[1]
    if int(sizes.max()) > num_classes:
        raise SaliencyError(f"published EG reads classes 0..{int(sizes.max()) - 1}; the model has {num_classes}")
    weights = (torch.arange(num_classes, device=x.device) < sizes.view(-1, 1)).to(x.dtype)  # [groups, K]
    maps = torch.zeros_like(x)
    for part in row_chunks(len(firsts), max_rows):
        rows = firsts[part]
        _, (grad,) = weighted_output_grads(model, points[rows], weights[part], softmax=False)
        maps[rows] = delta[rows] * grad
    return maps
