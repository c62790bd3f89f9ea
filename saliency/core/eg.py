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
from .common import image_generator, image_indices, output_grads, row_chunks, rows_per_call

DEFAULT_MAX_ROWS = 64


def draw_eg_references(num_references: int, seed: int, indices):
    """(reference positions [N] long, alphas [N] float32), CPU, one draw per image index."""
    positions, alphas = [], []
    for index in indices:
        gen = image_generator(seed, index)
        positions.append(int(torch.randint(int(num_references), (1,), generator=gen)))
        alphas.append(float(torch.rand((), generator=gen)))
    return torch.tensor(positions, dtype=torch.long), torch.tensor(alphas, dtype=torch.float32)


def eg(model, images: torch.Tensor, target: torch.Tensor, *, seed: int = 0, indices=None,
       reference_images: torch.Tensor | None = None, max_rows: int | None = None) -> torch.Tensor:
    """EG maps of p_target, float32, shaped like `images`.

    model: probability model. reference_images: the whole evaluation set [M,3,H,W] (any device);
    without it the references come from the batch itself (then a map depends on its batch).
    The reference and alpha of image i come from image_generator(seed, indices[i]).
    """
    x = images.detach().float()
    n = len(x)
    target = torch.as_tensor(target, device=x.device).long().view(-1)
    pool = x if reference_images is None else reference_images
    if pool.ndim != x.ndim or tuple(pool.shape[1:]) != tuple(x.shape[1:]) or len(pool) == 0:
        raise SaliencyError(f"reference_images must be [M,{','.join(map(str, x.shape[1:]))}], got {tuple(pool.shape)}")
    positions, alphas = draw_eg_references(len(pool), seed, image_indices(indices, n))
    refs = pool[positions.to(pool.device)].detach().to(x.device, torch.float32)
    alphas = alphas.to(x.device).view(-1, *[1] * (x.ndim - 1))
    delta = x - refs
    maps = torch.empty_like(x)
    for part in row_chunks(n, rows_per_call(max_rows, x.device, DEFAULT_MAX_ROWS)):
        _, (grad,) = output_grads(model, refs[part] + alphas[part] * delta[part], target[part])
        maps[part] = delta[part] * grad
    return maps
