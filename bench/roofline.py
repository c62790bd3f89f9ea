"""Every method and the metric against the hardware's own limit.

    .venv/bin/python bench/roofline.py --model efficientnet_lite0 --images 2
    .venv/bin/python bench/roofline.py --model resnet50 --weights random --device cuda --images 16

1. The limit: per-row time of a forward pass (inference mode), of a forward recording
   gradients, and of a backward to the input (as the methods take it), each at its best batch size.
2. Each method is run with hooks on the model that count the rows it forwards (with and
   without gradient) and the rows it backpropagates. Its limit is what those passes cost at
   the best batch size: rows forwarded without gradient x t_fwd + rows forwarded recording
   gradients x t_fwd_grad + rows backpropagated x t_bwd, where t_bwd is the marginal cost of a
   backward (a second backward from one forward) and t_fwd_grad = t(forward + backward) - t_bwd.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saliency import saliency_zoo  # noqa: E402
from saliency.metric import InsertionDeletion, default_batch_size  # noqa: E402
from utils import load_model, probability_model, resolve_device  # noqa: E402


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
    """Per-row costs at each batch size: forward (inference mode), forward with gradient
    recording, and one backward to the input (the marginal cost of a second backward from the
    same forward, as methods that take two gradients pay it). Returns the table and the best
    (smallest) per-row cost of each over the batch sizes."""
    table = {}
    for batch in batches:
        x = torch.rand(batch, 3, size, size, device=device)
        target = torch.zeros(batch, dtype=torch.long, device=device)

        def forward():
            with torch.inference_mode():
                model(x)

        def forward_backward(times):
            def run():
                xg = x.clone().requires_grad_(True)
                out = model(xg).gather(1, target[:, None]).sum()
                for k in range(times):
                    torch.autograd.grad(out, xg, retain_graph=k + 1 < times)
            return run

        try:
            f = timed(forward, device) / batch
            fb1 = timed(forward_backward(1), device) / batch
            fb2 = timed(forward_backward(2), device) / batch
        except torch.OutOfMemoryError:
            break
        b = max(fb2 - fb1, 0.0)
        table[batch] = (f, fb1 - b, b)
    best = tuple(min(v[k] for v in table.values()) for k in range(3))
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


def run_method(name, model, images, labels, batch):
    for i in range(0, len(images), batch):
        part = slice(i, i + batch)
        saliency_zoo.attribute(name, model, images[part], labels[part], indices=range(i, min(i + batch, len(images))),
                               reference_images=images)


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
    table, (t_f, t_fg, t_b) = pass_limits(model, device, args.size, batches)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
    print(f"## {args.model} ({args.weights}), {card}, torch {torch.__version__}, {args.size}x{args.size}, fp32\n")
    print("| batch | forward ms/row | forward recording gradients ms/row | backward ms/row |\n| --- | --- | --- | --- |")
    for batch, (f, fg, b) in table.items():
        print(f"| {batch} | {1000 * f:.2f} | {1000 * fg:.2f} | {1000 * b:.2f} |")
    print(f"\nlimit (best over batch sizes): forward {1000 * t_f:.2f}, forward recording gradients {1000 * t_fg:.2f}, "
          f"backward {1000 * t_b:.2f} ms/row\n")

    path = Path(args.data_dir) / "img_batch.pt"
    if path.exists() and args.size == 224 and len(torch.load(path)) >= args.images:
        images = torch.load(path)[: args.images]
        labels = torch.load(Path(args.data_dir) / "label_batch.pt")[: args.images]
    else:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(args.images, 3, args.size, args.size, generator=g)
        labels = torch.randint(0, 1000, (args.images,), generator=g)
    images, labels = images.to(device), labels.to(device)

    print("| stage | batch | fwd rows/img | bwd rows/img | s/img | limit s/img | achieved/limit | img/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.methods or [*saliency_zoo.built_methods(), "metric"]:
        counter = PassCounter(model)
        sync(device)
        start = time.perf_counter()
        if name == "metric":
            batch = default_batch_size(device)
            maps = torch.rand(images.shape, generator=torch.Generator().manual_seed(1))
            InsertionDeletion(probability_model(model), batch_size=batch).curves(images, maps)
        else:
            batch = saliency_zoo.get_method(name).reference_batch
            run_method(name, model, images, labels, batch)
        sync(device)
        seconds = (time.perf_counter() - start) / len(images)
        counter.close()
        n = len(images)
        limit = (counter.nograd * t_f + counter.grad * t_fg + counter.backward * t_b) / n
        print(f"| {name} | {batch} | {(counter.nograd + counter.grad) / n:.0f} | {counter.backward / n:.0f} | "
              f"{seconds:.2f} | {limit:.2f} | {limit / seconds:.2f} | {1 / seconds:.3f} |", flush=True)


if __name__ == "__main__":
    main()
