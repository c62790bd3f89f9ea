"""Every method and the metric against the hardware's own limit.

    .venv/bin/python bench/roofline.py --model efficientnet_lite0 --images 2
    .venv/bin/python bench/roofline.py --model resnet50 --weights random --device cuda --images 16

1. The limit: per-row time of a forward pass (inference mode) and of a forward+backward pass
   (gradient with respect to the input, as the methods take it), each at its best batch size
   (median of 5 runs: the minimum is too optimistic on a shared virtual machine), measured
   before and after the stages; the lower of the two rounds counts.
2. Each method is run with hooks on the model that count the rows it forwards (with and
   without gradient) and the rows it backpropagates. Its limit is what those passes cost at
   the best batch size: rows forwarded x t_fwd + rows backpropagated x (t_fwdbwd - t_fwd).
3. achieved/limit = limit time / measured time (1.0 = the method costs only its model passes).

Prints Markdown tables for docs/PERFORMANCE.md. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from labench.compute.setup import default_batch_size as method_batch_size
from labench.compute.memory import auto_rows
from labench.nets.models import load_model, resolve_device
from saliency import InsertionDeletion, saliency_zoo
from saliency.metric import default_batch_size, whole_curves


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=5):
    """Median wall time of fn() over a few repeats, after one warm-up (the minimum is too
    optimistic on a shared virtual machine)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def pass_limits(model, device, size, batches):
    """Per-row cost at each batch size of a forward (inference mode) and of a forward+backward
    (gradient of one output per row with respect to the input, as the methods take it).
    Returns the table and the best (smallest) per-row cost of each over the batch sizes."""
    table = {}
    for batch in batches:
        x = torch.rand(batch, 3, size, size, device=device)
        target = torch.zeros(batch, dtype=torch.long, device=device)

        def forward():
            with torch.inference_mode():
                model(x)

        def forward_backward():
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xg).gather(1, target[:, None]).sum(), xg)

        try:
            table[batch] = (timed(forward, device) / batch, timed(forward_backward, device) / batch)
        except torch.OutOfMemoryError:
            break
    best = tuple(min(v[k] for v in table.values()) for k in range(2))
    return table, best


class PassCounter:
    """Counts rows through a model: forwards without gradient, with gradient, and backwards."""

    def __init__(self, model):
        self.nograd = self.grad = self.backward = 0
        self.handles = [model.register_forward_hook(self._forward),
                        model.register_full_backward_hook(self._backward)]

    def _forward(self, module, inputs, output):
        if torch.is_grad_enabled():
            self.grad += len(inputs[0])
        else:
            self.nograd += len(inputs[0])

    def _backward(self, module, grad_input, grad_output):
        self.backward += len(grad_output[0])

    def close(self):
        for h in self.handles:
            h.remove()


def run_method(name, model, images, labels, batch, max_rows):
    for i in range(0, len(images), batch):
        part = slice(i, i + batch)
        saliency_zoo.attribute(name, model, images[part], labels[part], indices=range(i, min(i + batch, len(images))),
                               reference_images=images, max_rows=max_rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--methods", nargs="*", default=None, help="default: every built method; 'metric' for the metric")
    parser.add_argument("--batches", type=int, nargs="*", default=None, help="batch sizes tried for the limit")
    parser.add_argument("--data_dir", default="data")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    batches = args.batches or ([1, 2, 4, 8, 16] if device.type == "cpu" else [16, 32, 64, 128, 256])
    images, labels = bench_images(args, device)
    before = pass_limits(model, device, args.size, batches)
    stages = [run_stage(name, model, images, labels, args.model, device)
              for name in args.methods or [*saliency_zoo.built_methods(), "metric"]]
    after = pass_limits(model, device, args.size, batches)

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
    print(f"## {args.model} ({args.weights}), {card}, torch {torch.__version__}, {args.size}x{args.size}, fp32\n")
    print("| batch | forward ms/row (before / after) | forward+backward ms/row (before / after) |\n| --- | --- | --- |")
    for batch in before[0]:
        (f0, fb0), (f1, fb1) = before[0][batch], after[0].get(batch, (float("nan"),) * 2)
        print(f"| {batch} | {1000 * f0:.2f} / {1000 * f1:.2f} | {1000 * fb0:.2f} / {1000 * fb1:.2f} |")
    # the limit is the best the hardware showed in either round (noise only ever slows a run down)
    t_f, t_fb = min(before[1][0], after[1][0]), min(before[1][1], after[1][1])
    t_b = t_fb - t_f  # a backward costs what a forward+backward costs beyond the forward
    print(f"\nlimit (best over batch sizes and both rounds): forward {1000 * t_f:.2f} ms/row, "
          f"forward+backward {1000 * t_fb:.2f} ms/row\n")

    print("| stage | images per call | rows per model call | fwd rows/img | bwd rows/img | s/img | limit s/img | achieved/limit | img/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    n = len(images)
    for name, batch, rows, forwarded, backpropagated, seconds in stages:
        limit = (forwarded * t_f + backpropagated * t_b) / n
        print(f"| {name} | {batch} | {rows or 'method default'} | {forwarded / n:.0f} | {backpropagated / n:.0f} | "
              f"{seconds:.2f} | {limit:.2f} | {limit / seconds:.2f} | {1 / seconds:.3f} |")


def bench_images(args, device):
    """The cached evaluation images when there are enough at this size, else random ones."""
    path = Path(args.data_dir) / "img_batch.pt"
    if path.exists() and args.size == 224 and len(torch.load(path)) >= args.images:
        images = torch.load(path)[: args.images]
        labels = torch.load(Path(args.data_dir) / "label_batch.pt")[: args.images]
    else:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(args.images, 3, args.size, args.size, generator=g)
        labels = torch.randint(0, 1000, (args.images,), generator=g)
    return images.to(device), labels.to(device)


def run_stage(name, model, images, labels, model_name, device):
    """(name, images per call, rows per call, rows forwarded, rows backpropagated, s/img) of one
    method or the metric, with the scripts' choices: on CUDA rows per call from the memory
    budget, measured before the clock starts."""
    if name == "metric":
        fit = auto_rows(model, images.shape[1:], device, grad=False)
        batch = rows = whole_curves(fit) if fit else default_batch_size(device)
    else:
        batch = method_batch_size(name, model_name, device)
        rows = auto_rows(model, images.shape[1:], device, grad=True,
                         rows_per_unit=saliency_zoo.get_method(name).rows_per_unit)
    counter = PassCounter(model)
    sync(device)
    start = time.perf_counter()
    if name == "metric":
        maps = torch.rand(images.shape, generator=torch.Generator().manual_seed(1))
        InsertionDeletion(model, batch_size=batch).curves(images, maps)
    else:
        run_method(name, model, images, labels, batch, rows)
    sync(device)
    seconds = (time.perf_counter() - start) / len(images)
    counter.close()
    print(f"{name}: {seconds:.2f} s/img", file=sys.stderr, flush=True)
    return name, batch, rows, counter.nograd + counter.grad, counter.backward, seconds

if __name__ == "__main__":
    main()
