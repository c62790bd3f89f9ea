"""--runtime: the metric's forward passes in a CPU inference runtime (eval.py, report.py).

Insertion and Deletion only run forwards (451 rows per image), so on a CPU they can run in an
inference runtime instead of PyTorch: OpenVINO (`openvino.convert_model` converts the PyTorch
module itself) or ONNX Runtime (through torch's ONNX exporter). The logit model is converted once
per run for the fixed input [rows, C, H, W] of the metric's calls, in float32 (OpenVINO's
inference precision is forced to f32 in ACCURACY mode and read back: no bf16, no int8), with the
threads PyTorch has. `RuntimeModel` is a drop-in logit model: the same perturbed images in,
logits out; a call with fewer rows is padded with zeros to the fixed count and the padding
dropped. Softmax, the class scored and everything else stay in PyTorch.

The default, "auto", takes on a CPU the first installed of OpenVINO and ONNX Runtime (`make setup`
installs both) and PyTorch on a GPU, without one of them, or with the opt-in speed modes --amp and
--fast, which are PyTorch's own; `--runtime torch` keeps PyTorch on a CPU.

A converted model is used only when its logits on the run's first images equal the eager model's
to TOLERANCE of the largest logit; otherwise, or when the conversion fails, the package is
missing or the device is not the CPU, the metric runs in PyTorch and one line on stderr says why
(`converted_for_metric`). Never a silently different function.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

from saliency.core.common import row_chunks

import importlib.util

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
CONVERTED = ("openvino", "onnxruntime")  # the runtimes that convert the model, in the order "auto" tries them
# the Python packages each needs (torch's ONNX exporter needs onnx)
PACKAGES = {"openvino": ("openvino",), "onnxruntime": ("onnxruntime", "onnx")}
NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
# what to install; `pip install -e '.[runtime]'` (make setup) brings both
INSTALL = {"openvino": "pip install openvino", "onnxruntime": "pip install onnxruntime onnx"}
# |converted - eager| <= TOLERANCE * max |eager logit| on the run's first images (measured: ~1e-6)
TOLERANCE = 1e-5
# OpenVINO's CPU plugin: float32 everywhere, no precision-lowering optimisation, one request at a time
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "EXECUTION_MODE_HINT": "ACCURACY",
                   "PERFORMANCE_HINT": "LATENCY", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}


class RuntimeModel(nn.Module):
    """A logit model that runs `run` (float32 array [rows, C, H, W] -> logits [rows, K]), a
    converted copy of `eager` for that fixed shape. `eager` stays attached (its parameters tell
    callers the device) and is never called."""

    def __init__(self, eager, run, rows, image_shape, runtime, version=""):
        super().__init__()
        self.eager = eager
        self.rows, self.image_shape = int(rows), tuple(image_shape)
        self.runtime, self.version = runtime, version
        self._run = run
        self._padded = np.zeros((self.rows, *self.image_shape), np.float32)

    def forward(self, x):
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"{NAMES[self.runtime]} model converted for images {self.image_shape}, got {tuple(x.shape[1:])}")
        x = x.detach().to("cpu", torch.float32).contiguous()
        return torch.cat([self._call(x[part].numpy()) for part in row_chunks(len(x), self.rows)])

    def _call(self, rows):
        n = len(rows)
        if n < self.rows:  # the converted model takes exactly self.rows rows: pad, then drop the padding
            self._padded[:n] = rows
            self._padded[n:] = 0
            rows = self._padded
        return torch.from_numpy(np.array(self._run(rows)[:n], dtype=np.float32))


@contextlib.contextmanager
def _quiet():
    """No deprecation warnings from the tracing exporters, and none of their C++ log: torch's ONNX
    exporter writes the whole graph to the process's standard output when an operator fails."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _openvino(model, example):
    """(run, version): `model` converted by OpenVINO and compiled for the CPU in float32."""
    import openvino as ov

    with _quiet():
        converted = ov.convert_model(model, example_input=example, input=[tuple(example.shape)])
    config = {**OPENVINO_CONFIG, "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    compiled = ov.Core().compile_model(converted, "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    if precision != ov.Type.f32:
        raise RuntimeError(f"OpenVINO compiled the model in {precision}, not f32")
    request = compiled.create_infer_request()
    return (lambda rows: request.infer([rows], share_inputs=True)[0]), ov.__version__.split("-")[0]


def _onnxruntime(model, example):
    """(run, version): `model` exported to ONNX (torch's TorchScript-based exporter, which needs
    the onnx package) and run by ONNX Runtime's CPU provider with PyTorch's thread count."""
    import onnxruntime as ort
    import onnx  # noqa: F401  torch's exporter needs it; missing, the run says how to install it

    buffer = io.BytesIO()
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with _quiet():
        torch.onnx.export(model, (example,), buffer, input_names=["images"], output_names=["logits"], **legacy)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return (lambda rows: session.run(None, {"images": rows})[0]), ort.__version__


CONVERTERS = {"openvino": _openvino, "onnxruntime": _onnxruntime}


def convert(runtime, model, rows, image_shape) -> RuntimeModel:
    """`model` (a logit model on the CPU) converted for [rows, *image_shape] float32 inputs.
    Raises ImportError when the runtime's package is missing, anything else when it fails."""
    example = torch.zeros(rows, *image_shape)
    with torch.inference_mode():
        run, version = CONVERTERS[runtime](model, example)
    return RuntimeModel(model, run, rows, image_shape, runtime, version)


def largest_difference(model, converted, images):
    """(max |converted - eager| logits, max |eager logit|) on `images`."""
    with torch.inference_mode():
        expected, got = model(images.float()), converted(images)
    return float((got - expected).abs().max()), float(expected.abs().max())


def failure_reason(err) -> str:
    """One short line of a converter's exception: the line naming the operation it could not
    convert where there is one (the converters' messages run over many lines), else the first."""
    lines = [line.strip(" -") for line in str(err).splitlines() if line.strip(" -")] or [""]
    named = [line for line in lines if "aten::" in line]
    return f"{type(err).__name__}: {(named or lines)[0][:160]}"


def installed(runtime) -> bool:
    """Whether the packages of a converting runtime are importable (without importing them)."""
    try:
        return all(importlib.util.find_spec(package) is not None for package in PACKAGES[runtime])
    except (ImportError, ValueError):  # a module set to None in sys.modules (import blocked), or without a spec
        return False


# "auto" converts where it pays: a conversion takes about 3 s on 2 cores, and the runtime saves about
# 6 s of the ~9 s PyTorch spends on one 224 x 224 image's 451 forwards; on less work PyTorch runs it
AUTO_MIN_PIXEL_ROWS = 451 * 224 * 224


def resolve_runtime(runtime, device, amp=False, fast=False, pixel_rows=None) -> str:
    """The runtime a run's metric asks for: `runtime` itself, or for "auto" the first installed of
    CONVERTED on a CPU; "torch" on other devices, with --amp or --fast, when none is installed, or
    when the run's forwards (pixel_rows: rows x H x W, None when unknown) are too few to pay for
    the conversion."""
    if runtime != "auto":
        return runtime
    too_little = pixel_rows is not None and pixel_rows < AUTO_MIN_PIXEL_ROWS
    if torch.device(device).type != "cpu" or amp or fast or too_little:
        return "torch"
    return next((name for name in CONVERTED if installed(name)), "torch")


def auto_note(runtime, device, amp=False, fast=False):
    """The line an "auto" run prints when it stays in PyTorch on a CPU for want of a runtime."""
    if runtime == "auto" and torch.device(device).type == "cpu" and not (amp or fast) \
            and resolve_runtime("auto", device) == "torch":
        return (f"note: the metric runs in PyTorch; {INSTALL['openvino']} (or pip install -e '.[runtime]') runs "
                "its forward passes about 3x faster on a CPU at float rounding")
    return None


def converted_for_metric(runtime, model, images, rows):
    """(model, note): the logit model the metric's curves run on, and one line for stderr (None
    when nothing is to be said). The runtime's converted copy of `model` (fixed [rows, C, H, W]
    inputs) when it converts and its logits on the first `rows` of `images` (the run's first
    images) are within TOLERANCE of the largest eager logit; else `model` itself and why."""
    if runtime == "torch":
        return model, None
    name = NAMES[runtime]
    fallback = "; the metric runs in PyTorch"
    device = next(model.parameters()).device
    if device.type != "cpu":
        return model, f"note: --runtime {runtime} runs on the CPU only, not {device.type}{fallback}"
    try:
        converted = convert(runtime, model, rows, tuple(images.shape[1:]))
    except ImportError as err:
        return model, (f"note: --runtime {runtime} needs the {err.name or runtime} package: {INSTALL[runtime]} "
                       f"(make setup installs it){fallback}")
    except Exception as err:  # an unsupported operation, a tracing failure: the converter's own reasons vary
        return model, f"note: {name} could not convert this model ({failure_reason(err)}){fallback}"
    worst, scale = largest_difference(model, converted, images[:rows])
    if not worst <= TOLERANCE * scale:
        return model, (f"note: {name} changed this model's logits by up to {worst:.3g} (more than {TOLERANCE:g} of "
                       f"the largest, {scale:.3g}){fallback}")
    return converted, (f"note: the metric's forward passes run in {name} {converted.version} (float32, {rows} rows "
                       f"per call; logits within {worst / scale:.1e} of the largest eager logit; --runtime torch "
                       "for PyTorch)")
