"""Rows per model call on a CUDA device, from a measured memory budget."""
from __future__ import annotations

import torch

from saliency.core.common import output_grads, softmax_of

from ..errors import UserError

MEMORY_BUDGET = 0.7  # share of the device's free memory one model call may fill
MAX_AUTO_ROWS = 1024  # beyond this a GPU gains nothing and a failed call loses much


def rows_within(free_bytes, fixed_bytes, bytes_per_row, budget=MEMORY_BUDGET, cap=MAX_AUTO_ROWS):
    """The largest power of two of rows whose pass fits budget * free_bytes (at least 1, at most cap).

    Powers of two keep the choice stable between runs on one card whose free memory moves a little,
    so a resumed run usually makes the same calls as the first."""
    fit = int((budget * free_bytes - fixed_bytes) // max(bytes_per_row, 1))
    rows = 1
    while rows * 2 <= min(fit, cap):
        rows *= 2
    return rows


def peak_pass_bytes(model, rows, image_shape, device, grad):
    """Peak CUDA bytes one model call of `rows` rows allocates beyond what was allocated before:
    a forward in inference mode, or (grad=True) a forward and the input gradients of two
    outputs per row, as the gradient methods take them."""
    x = torch.rand(rows, *image_shape, device=device)
    classes = torch.zeros(rows, dtype=torch.long, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    if grad:
        output_grads(softmax_of(model), x, classes, classes)
    else:
        with torch.inference_mode():
            model(x)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


PROBE_ROWS = ((8, 24), (1, 3))  # the second pair where the first runs out of memory


def measure_pass_bytes(model, image_shape, device, grad):
    """(fixed, per-row) peak CUDA bytes of one model call, from calls of two sizes."""
    for small, large in PROBE_ROWS:
        try:
            low = peak_pass_bytes(model, small, image_shape, device, grad)
            high = peak_pass_bytes(model, large, image_shape, device, grad)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        per_row = max((high - low) / (large - small), 1.0)
        return max(low - per_row * small, 0.0), per_row
    raise UserError("the model does not fit the GPU's free memory even for 3 rows; free the GPU or use --device cpu")


def auto_rows(model, image_shape, device, grad, rows_per_unit=1):
    """Rows per model call that fit the memory budget on a CUDA device; None elsewhere (methods
    and the metric then use their CPU defaults). rows_per_unit: model rows one unit of the
    method's max_rows makes (DeepLIFT passes each image with its baseline: 2)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    fixed, per_row = measure_pass_bytes(model, tuple(image_shape), device, grad)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return rows_within(free, fixed, per_row * rows_per_unit)
