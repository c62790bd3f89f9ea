"""AttEXplore: attribution by exploring model parameters (frequency-domain gradient ensembles).

Zhu et al., "AttEXplore: Attribution for Explanation with model parameters eXploration",
ICLR 2024. docs/PROTOCOL.md, table row "attexplore".

The MFABA path x_{t+1} = clip(x + clip(x_t - alpha sign(G_t) - x, -epsilon, epsilon), 0, 1),
alpha = epsilon / num_steps, num_steps steps, no early stop. G_t accumulates (momentum 1.0) the
per-step gradient g_t: the mean over num_samples samples of d CE(softmax(logits(DIResize(v))),
target)/dv with v = idct2(dct2(x_t + n) * m), n ~ N(0, (16/255)^2), m ~ U(0.5, 1.5) (v is a
leaf: no gradient through the DCT); then a 7x7 Gaussian (nsig 3) depthwise blur and division
by its mean absolute value. Attribution = -sum_t (x_{t+1} - x_t) * G_t.

The published code then computes a final G_T at x_T (plain DI for CNNs, DIResize for MaxViT)
and drops it (grads[:-1]); it does not change the map and is not computed here, so the model's
architecture is not needed.

Every random draw comes from the image's own generator (common.image_generator), in this order
per step: noise [S,C,H,W], mask [S,C,H,W], DIResize sizes [S], top pads [S], left pads [S], use [S]
(S = num_samples). DIResize works per row: resize to s x s (s in [H, int(1.15 H))), zero-pad to
int(1.15 H) at (top, left), resize back to H x H; rows whose `use` draw is >= 0.5 pass unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import SaliencyError
from .common import image_generator, image_indices, output_grads, row_chunks, rows_per_call
from .dct import dct2, idct2
from .params import COUNT, POSITIVE, Param, protocol

NOISE_STD = 16 / 255
MASK_RHO = 0.5  # spectrum mask ~ U(1 - rho, 1 + rho)
MOMENTUM = 1.0
KERNEL_SIZE, KERNEL_NSIG = 7, 3
RESIZE_RATE, DIVERSITY_PROB = 1.15, 0.5
DEFAULT_MAX_ROWS = 80  # the published batch: 4 images x 20 samples


@protocol("AttEXplore", Param("epsilon", 16 / 255, POSITIVE), Param("num_steps", 10, COUNT),
          Param("num_samples", 20, COUNT))
def attexplore(
    model,
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    epsilon: float,
    num_steps: int,
    num_samples: int,
    seed: int = 0,
    indices=None,
    max_rows: int | None = None,
) -> torch.Tensor:
    """AttEXplore maps, float32, shaped like `images` (square images).

    model: logit model on [0,1] images (softmax applied here). target: [N] classes explained
    (the labels). epsilon: box half-width in [0,1] units (the published 16 / 255). max_rows
    bounds the (image, sample) rows per model call.
    """
    images = images.detach()
    if not images.is_floating_point():
        images = images.float()
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise SaliencyError(f"AttEXplore needs square images [N,C,H,H], got {tuple(images.shape)}")
    target = torch.as_tensor(target).to(images.device).long().view(-1)
    if len(target) != len(images):
        raise SaliencyError(f"{len(target)} targets for {len(images)} images")
    generators = [image_generator(seed, i) for i in image_indices(indices, len(images))]
    max_rows = rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS)
    images_per_chunk = max(1, max_rows // int(num_samples))
    maps = [
        _explore(model, images[part], target[part], generators[part], float(epsilon), int(num_steps),
                 int(num_samples), max_rows)
        for part in row_chunks(len(images), images_per_chunk)
    ]
    return torch.cat(maps).float()


def gaussian_kernel(channels: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """[channels, 1, 7, 7] depthwise kernel: outer product of the normal pdf at linspace(-3, 3, 7),
    summing to 1, in float32 as published."""
    grid = torch.linspace(-KERNEL_NSIG, KERNEL_NSIG, KERNEL_SIZE, dtype=torch.float64)
    pdf = torch.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi)
    kernel = torch.outer(pdf, pdf)
    kernel = (kernel / kernel.sum()).float()
    return kernel.expand(channels, 1, KERNEL_SIZE, KERNEL_SIZE).to(dtype=dtype, device=device)


def resize_bounds(size: int) -> int:
    """Side of the padded DIResize canvas, int(1.15 * size) (257 for 224), at least size + 1."""
    return max(int(size * RESIZE_RATE), size + 1)


def draw_step(generator: torch.Generator, num_samples: int, shape) -> dict:
    """One image's random draws for one step, on the CPU, in the documented order."""
    size = shape[-1]
    canvas = resize_bounds(size)
    noise = torch.randn((num_samples, *shape), generator=generator) * NOISE_STD
    mask = torch.rand((num_samples, *shape), generator=generator) * (2 * MASK_RHO) + (1 - MASK_RHO)
    sizes = torch.randint(size, canvas, (num_samples,), generator=generator)
    room = canvas - sizes
    top = (torch.rand(num_samples, generator=generator, dtype=torch.float64) * room).long()
    left = (torch.rand(num_samples, generator=generator, dtype=torch.float64) * room).long()
    use = torch.rand(num_samples, generator=generator) < DIVERSITY_PROB
    return {"noise": noise, "mask": mask, "sizes": sizes, "top": top, "left": left, "use": use}


def di_resize(v: torch.Tensor, sizes, top, left, use) -> torch.Tensor:
    """Per-row DIResize: rows with `use` are resized to sizes[i], zero-padded onto a canvas of
    resize_bounds(H) at (top[i], left[i]) and resized back to H x H (bilinear, align_corners
    False); the other rows pass unchanged. Rows sharing a size are resized together."""
    rows = [int(i) for i in use.nonzero().view(-1).tolist()]
    if not rows:
        return v
    size = v.shape[-1]
    canvas = resize_bounds(size)
    padded = {}
    sizes_used = sorted({int(sizes[i]) for i in rows})
    for s in sizes_used:
        group = [i for i in rows if int(sizes[i]) == s]
        rescaled = F.interpolate(v[group], size=(s, s), mode="bilinear", align_corners=False)
        for j, i in enumerate(group):
            t, le = int(top[i]), int(left[i])
            padded[i] = F.pad(rescaled[j:j + 1], [le, canvas - s - le, t, canvas - s - t], value=0.0)
    back = F.interpolate(torch.cat([padded[i] for i in rows]), size=(size, size), mode="bilinear",
                         align_corners=False)
    out = v.clone()
    out[torch.tensor(rows, device=v.device)] = back
    return out


def _explore(model, x, target, generators, epsilon, num_steps, num_samples, max_rows):
    n, shape = len(x), x.shape[1:]
    alpha = epsilon / num_steps
    kernel = gaussian_kernel(shape[0], x.dtype, x.device)
    t_rows = target.repeat_interleave(num_samples)
    state = x.clone()
    accumulated = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for _ in range(num_steps):
        draws = [draw_step(g, num_samples, shape) for g in generators]
        cat = {key: torch.cat([d[key] for d in draws]) for key in draws[0]}
        noise = cat["noise"].to(device=x.device, dtype=x.dtype)
        mask = cat["mask"].to(device=x.device, dtype=x.dtype)
        v = idct2(dct2(state.repeat_interleave(num_samples, dim=0) + noise) * mask)
        grads = torch.empty_like(v)
        for part in row_chunks(len(v), max_rows):
            di = {key: cat[key][part] for key in ("sizes", "top", "left", "use")}

            def loss_rows(inputs, di=di):
                probabilities = torch.softmax(model(di_resize(inputs, **di)), dim=1)
                return -torch.log_softmax(probabilities, dim=1)  # CE of the probabilities, per class

            _, (grad,) = output_grads(loss_rows, v[part], t_rows[part])
            grads[part] = grad
        g = grads.view(n, num_samples, *shape).mean(dim=1)
        g = F.conv2d(g, kernel, padding=KERNEL_SIZE // 2, groups=shape[0])
        g = g / g.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
        accumulated = MOMENTUM * accumulated + g
        moved = (state - alpha * accumulated.sign() - x).clamp(-epsilon, epsilon)
        new = (x + moved).clamp(0, 1)
        total -= (new - state) * accumulated
        state = new
    return total
