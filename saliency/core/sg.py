"""SmoothGrad (SG).

Smilkov et al., "SmoothGrad: removing noise by adding noise", arXiv 1706.03825.

The mean over n_samples of d p_target/dx at x + N(0, stdev^2) noise (stdev absolute, in [0,1]
pixel units), without abs (captum NoiseTunnel(Saliency) with abs=False in the reference).
"""
from __future__ import annotations

import torch

from .common import image_generator, image_indices, output_grads, row_chunks, rows_per_call
from .params import COUNT, Param, Range, protocol

DEFAULT_MAX_ROWS = 64


@protocol("SG", Param("n_samples", 50, COUNT), Param("stdev", 0.15, Range(0)))
def sg(model, images: torch.Tensor, target: torch.Tensor, *, n_samples: int, stdev: float,
       seed: int = 0, indices=None, max_rows: int | None = None) -> torch.Tensor:
    """SmoothGrad maps of p_target, float32, shaped like `images`.

    model: probability model. The noise of image i comes from image_generator(seed, indices[i]),
    so a map does not depend on the batch. All (image, sample) rows are batched; max_rows bounds
    how many go through the model at once.
    """
    x = images.detach().float()
    n, s = len(x), int(n_samples)
    target = torch.as_tensor(target, device=x.device).long().view(-1)
    generators = [image_generator(seed, index) for index in image_indices(indices, n)]
    shape = tuple(x.shape[1:])
    total = torch.zeros_like(x)
    # rows are image-major and go in order, so each image's samples are drawn in order
    for part in row_chunks(n * s, rows_per_call(max_rows, x.device, DEFAULT_MAX_ROWS)):
        rows = range(part.start, part.stop)
        image = torch.tensor([r // s for r in rows], device=x.device)
        sample = torch.stack([torch.randn(shape, generator=generators[r // s]) for r in rows]).to(x.device) * stdev
        _, (grad,) = output_grads(model, x[image] + sample, target[image])
        total.index_add_(0, image, grad)
    return total / s
