"""The scripts end to end on the offline sample, and their answers to bad input."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, call_script, load_script, make_images
from saliency.metric import auc


def run_script(script, *args, cwd):
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    """The built-in offline photos cached by generate_pt.py, as a user's first step makes them."""
    work = tmp_path_factory.mktemp("work")
    done = run_script("generate_pt.py", "--sample", "--png_dir", work / "visualized_imgs", "--out_dir", work / "data",
                      cwd=work)
    assert done.returncode == 0, done.stderr
    return work


def test_pipeline_end_to_end_on_two_sample_images(sample_data):
    work = sample_data
    la_args = ["--model", "efficientnet_lite0", "--attr_method", "la", "--spatial_range", 20, "--max_iter", 2,
               "--sampling_times", 2, "--limit", 2]
    done = run_script("generate_attributions.py", *la_args, cwd=work)
    assert done.returncode == 0, done.stderr
    npy = work / "attributions" / "efficientnet_lite0_la_spatial-range-20_max-iter-2_sampling-times-2_attributions.npy"
    maps = np.load(npy)
    assert maps.shape == (2, 3, 224, 224) and maps.dtype == np.float32 and np.abs(maps).sum() > 0

    done = run_script("eval.py", *la_args, cwd=work)
    assert done.returncode == 0, done.stderr
    scores = np.load(work / "scores" / "efficientnet_lite0_la_spatial-range-20_max-iter-2_sampling-times-2_scores.npz")
    assert scores["ins_curve"].shape == (225, 2) and scores["del_curve"].shape == (225, 2)
    assert float(scores["ins"]) == pytest.approx(auc(scores["ins_curve"].mean(axis=1)))
    assert float(scores["del"]) == pytest.approx(auc(scores["del_curve"].mean(axis=1)))
    # deletion removes the evidence the model used; insertion restores it
    assert scores["del_curve"][0].min() > scores["del_curve"][-1].max() - 1e-6
    with open(work / "results.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["model", "attr_method", "spatial_range", "max-iter", "samples_number", "insertion", "deletion"]
    assert rows[1][:5] == ["efficientnet_lite0", "la", "20", "2", "2"]
    assert float(rows[1][5]) == pytest.approx(round(float(scores["ins"]), 6))

    # a rerun recomputes nothing and replaces the row instead of adding one
    before = os.stat(npy).st_mtime_ns
    again = run_script("generate_attributions.py", *la_args, cwd=work)
    assert again.returncode == 0 and "not recomputed" in again.stdout
    assert os.stat(npy).st_mtime_ns == before
    assert run_script("eval.py", *la_args, cwd=work).returncode == 0
    with open(work / "results.csv") as f:
        assert len(list(csv.reader(f))) == 2


def test_sample_photos_are_cached_as_specified(sample_data):
    images = torch.load(sample_data / "data" / "img_batch.pt")
    labels = torch.load(sample_data / "data" / "label_batch.pt")
    assert images.dtype == torch.float32 and images.shape == (6, 3, 224, 224)
    assert 0 <= images.min() and images.max() <= 1
    assert labels.dtype == torch.int64 and labels.shape == (6,)
    # pixel/255 of the PNGs, in file-number order
    from PIL import Image

    png = np.asarray(Image.open(sample_data / "visualized_imgs" / "3.png").convert("RGB"))
    assert torch.equal(images[3], torch.from_numpy(png.copy()).permute(2, 0, 1).float() / 255)


def test_offline_model_agrees_with_most_sample_labels(sample_data, lite0):
    images = torch.load(sample_data / "data" / "img_batch.pt")
    labels = torch.load(sample_data / "data" / "label_batch.pt")
    with torch.no_grad():
        predicted = lite0(images).argmax(1)
    assert (predicted == labels).sum() >= 4  # measured: 4 of 6 (coffee, camera, rocket, motorcycle)


# ---------------------------------------------------------------- bad input


call = call_script


@pytest.fixture
def small_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    torch.save(make_images(2, size=32), data / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), data / "label_batch.pt")
    return tmp_path


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0]


def no_outputs(folder):
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize("argv, words", [
    (["--model", "resnet_nope"], ["unknown model", "efficientnet_lite0"]),
    (["--attr_method", "magic"], ["unknown method", "la"]),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"], ["device"]),
])
def test_generate_refuses_unknown_names(small_data, capsys, argv, words):
    out = small_data / "attr"
    code, err = call("generate_attributions", ["--data_dir", small_data / "data", "--prefix", out, *argv], capsys)
    assert_one_line_error(code, err, *words)
    assert no_outputs(out)


def test_labels_and_images_of_different_lengths(small_data, capsys):
    torch.save(torch.tensor([1, 2, 3]), small_data / "data" / "label_batch.pt")
    out = small_data / "attr"
    code, err = call("generate_attributions", ["--data_dir", small_data / "data", "--prefix", out], capsys)
    assert_one_line_error(code, err, "2 images but 3 labels")
    assert no_outputs(out)


def test_wrong_image_shape(small_data, capsys):
    torch.save(torch.rand(2, 32, 32), small_data / "data" / "img_batch.pt")
    code, err = call("generate_attributions", ["--data_dir", small_data / "data", "--prefix", small_data / "a"], capsys)
    assert_one_line_error(code, err, "[N,3,H,W]")


@pytest.mark.parametrize("script", ["generate_attributions", "eval"])
def test_missing_data_files(tmp_path, capsys, script):
    code, err = call(script, ["--data_dir", tmp_path / "nowhere", "--prefix", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "does not exist", "generate_pt.py")
    assert no_outputs(tmp_path / "out")


def test_corrupt_data_file(small_data, capsys):
    (small_data / "data" / "img_batch.pt").write_bytes(b"not a tensor at all")
    code, err = call("generate_attributions", ["--data_dir", small_data / "data", "--prefix", small_data / "a"], capsys)
    assert_one_line_error(code, err, "corrupt")


def test_eval_refuses_missing_corrupt_and_nan_maps(small_data, capsys):
    attr, scores = small_data / "attr", small_data / "scores"
    argv = ["--data_dir", small_data / "data", "--attr_method", "sm", "--attr_prefix", attr, "--prefix", scores,
            "--csv_path", small_data / "results.csv"]
    code, err = call("eval", argv, capsys)
    assert_one_line_error(code, err, "does not exist")

    attr.mkdir()
    npy = attr / "efficientnet_lite0_sm_attributions.npy"
    npy.write_bytes(b"\x93NUMPY garbage")
    code, err = call("eval", argv, capsys)
    assert_one_line_error(code, err, "corrupt")

    maps = np.zeros((2, 3, 32, 32), dtype=np.float32)
    maps[0, 0, 0, 0] = np.nan
    np.save(npy, maps)
    code, err = call("eval", argv, capsys)
    assert_one_line_error(code, err, "NaN")

    np.save(npy, np.zeros((3, 3, 32, 32), dtype=np.float32))
    code, err = call("eval", argv, capsys)
    assert_one_line_error(code, err, "shape")
    assert no_outputs(scores) and not (small_data / "results.csv").exists()


def test_generate_pt_refuses_label_count_mismatch(tmp_path, capsys):
    from PIL import Image

    pngs = tmp_path / "imgs"
    pngs.mkdir()
    for i in range(3):
        Image.new("RGB", (224, 224), (i, i, i)).save(pngs / f"{i}.png")
    torch.save(torch.tensor([1, 2]), pngs / "label_batch.pt")
    code, err = call("generate_pt", ["--png_dir", pngs, "--out_dir", tmp_path / "data"], capsys)
    assert_one_line_error(code, err, "3 images", "2 labels")
    assert no_outputs(tmp_path / "data")


def test_a_real_process_exits_non_zero_with_one_line(tmp_path):
    done = run_script("generate_attributions.py", "--attr_method", "magic", "--data_dir", tmp_path, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "unknown method" in done.stderr


# ---------------------------------------------------------------- speed modes


def test_speed_modes_keep_float32_outputs_and_exact_model_drops_autocast(lite0):
    from labench.nets.models import exact_model, with_speed_modes

    x = make_images(2, size=64)
    with torch.no_grad():
        plain = lite0(x)
        amp = with_speed_modes(lite0, amp=True)
        assert exact_model(lite0) is lite0
        assert torch.equal(exact_model(amp)(x), plain)  # the fp32 decision model is the plain model
        out = amp(x)
        assert out.dtype == torch.float32 and not torch.equal(out, plain)
        # bf16 rounding: logits move by up to ~0.35 here, probabilities by a little
        torch.testing.assert_close(out.softmax(1), plain.softmax(1), rtol=0, atol=0.02)


@pytest.fixture
def amp_data(sample_data, tmp_path):
    """Photos 4 and 5: bf16 flips the argmax of photo 4 on this CPU (its top two probabilities
    differ by 0.0006 in fp32)."""
    images = torch.load(sample_data / "data" / "img_batch.pt")[4:6]
    labels = torch.load(sample_data / "data" / "label_batch.pt")[4:6]
    (tmp_path / "data").mkdir()
    torch.save(images, tmp_path / "data" / "img_batch.pt")
    torch.save(labels, tmp_path / "data" / "label_batch.pt")
    return images, labels


LA_TINY = {"spatial_range": 20, "max_iter": 1, "sampling_times": 2}
LA_TINY_STEM = "la_spatial-range-20_max-iter-1_sampling-times-2"


def run_amp_pipeline(tmp_path, capsys):
    common = ["--model", "efficientnet_lite0", "--attr_method", "la", "--spatial_range", 20, "--max_iter", 1,
              "--sampling_times", 2, "--data_dir", tmp_path / "data", "--amp"]
    code, err = call("generate_attributions", [*common, "--prefix", tmp_path / "attr"], capsys)
    assert code == 0, err
    code, err_eval = call("eval", [*common, "--attr_prefix", tmp_path / "attr", "--prefix", tmp_path / "scores",
                                   "--csv_path", tmp_path / "results.csv"], capsys)
    assert code == 0, err_eval
    return err, np.load(tmp_path / "scores" / f"efficientnet_lite0-amp_{LA_TINY_STEM}_scores.npz")


def assert_scored_in_bf16_for_the_fp32_class(scores, images):
    from saliency.core.common import predict
    from labench.nets.models import load_model, with_speed_modes
    from saliency import probability_model

    model = load_model("efficientnet_lite0")
    exact = predict(model, images)
    with torch.no_grad():
        clean = probability_model(with_speed_modes(model, amp=True))(images).gather(1, exact[:, None]).squeeze(1)
    np.testing.assert_allclose(scores["del_curve"][0], clean.numpy(), rtol=1e-6)  # nothing deleted
    np.testing.assert_allclose(scores["ins_curve"][-1], clean.numpy(), rtol=1e-6)  # everything inserted


def test_amp_keeps_fp32_maps_where_bf16_moves_aucs_and_scores_in_bf16(amp_data, tmp_path, capsys):
    """la is not amp_maps (bf16 moves its AUCs beyond 0.005): --amp leaves its maps fp32 under
    the fp32 file name, and eval.py --amp scores them in bf16, for the fp32 argmax."""
    from saliency import saliency_zoo
    from labench.nets.models import load_model

    images, labels = amp_data
    assert not saliency_zoo.get_method("la").amp_maps
    err, scores = run_amp_pipeline(tmp_path, capsys)
    assert "maps stay fp32 under --amp" in err
    maps = np.load(tmp_path / "attr" / f"efficientnet_lite0_{LA_TINY_STEM}_attributions.npy")
    expected = saliency_zoo.attribute("la", load_model("efficientnet_lite0"), images, labels, indices=range(2),
                                      **LA_TINY)
    assert np.array_equal(maps, expected.numpy())
    assert_scored_in_bf16_for_the_fp32_class(scores, images)


def test_amp_maps_explain_the_fp32_argmax(amp_data, tmp_path, capsys, monkeypatch):
    """For a method with bf16 maps, --amp still decides the explained class in fp32."""
    import dataclasses

    from saliency import saliency_zoo
    from saliency.core.common import predict
    from labench.nets.models import load_model, with_speed_modes

    images, labels = amp_data
    monkeypatch.setitem(saliency_zoo.ZOO, "la", dataclasses.replace(saliency_zoo.ZOO["la"], amp_maps=True))
    err, scores = run_amp_pipeline(tmp_path, capsys)
    assert "stay fp32" not in err
    maps = np.load(tmp_path / "attr" / f"efficientnet_lite0-amp_{LA_TINY_STEM}_attributions.npy")
    model = load_model("efficientnet_lite0")
    expected = saliency_zoo.attribute("la", with_speed_modes(model, amp=True), images, labels, indices=range(2),
                                      predicted=predict(model, images), **LA_TINY)
    assert np.array_equal(maps, expected.numpy())
    assert_scored_in_bf16_for_the_fp32_class(scores, images)


@pytest.mark.parametrize("k", [1, 2])
def test_larger_offline_models_load_strictly_and_classify_the_sample(sample_data, lite0, k):
    """efficientnet_lite1 (240x240) and lite2 (260x260): every tensor of the packaged file lands
    in timm's network, the resize layer takes the 224 images to the model's own size, and on every
    sample photo lite0 classifies right the label is in the model's top 5 (measured: both are top-1
    right on coffee, camera and motorcycle; the rocket's label is in their top 5)."""
    from labench.nets import models

    model = models.load_model(f"efficientnet_lite{k}")
    size = models.EFFICIENTNET_LITE_SIZES[k]
    assert isinstance(model[1], models.ResizeTo) and model[1].size == size
    state = torch.load(models.efficientnet_lite_weights_path(k), map_location="cpu", weights_only=True)
    net = model[2]
    assert torch.equal(net.classifier.weight, state["_fc.weight"])
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for n, v in state.items()
                                                           if not n.endswith(("running_mean", "running_var",
                                                                              "num_batches_tracked")))
    images = torch.load(sample_data / "data" / "img_batch.pt")
    labels = torch.load(sample_data / "data" / "label_batch.pt")
    with torch.no_grad():
        lite0_right = lite0(images).argmax(1) == labels
        top5 = model(images).topk(5, dim=1).indices
    assert lite0_right.sum() >= 4
    assert (top5 == labels[:, None]).any(dim=1)[lite0_right].all()


def test_make_clean_removes_every_default_output_and_nothing_the_user_gave():
    """#32: the folders and files the scripts write at their defaults (read from the scripts' own
    defaults) go; visualized_imgs/ (the user's evaluation set), data/ itself and the environment stay."""
    import re

    from labench.flows.grid import GridOptions
    from labench.spec.run import Run

    def out_default(script):
        return re.search(r'add_argument\("--out", default="([^"]+)"', (ROOT / script).read_text()).group(1)

    dry = subprocess.run(["make", "-n", "-s", "clean"], cwd=ROOT, capture_output=True, text=True, check=True)
    removed = set(dry.stdout.replace("\\\n", " ").split())
    run = Run()
    expected = {run.maps_dir, run.scores_dir, run.csv_path, f"{run.csv_path}.lock", "figures", "data/*.pt",
                "data/provenance.json", GridOptions.log_dir.split("/")[0],
                *[out_default(script) for script in ("report.py", "sanity.py", "tables.py")]}
    assert expected <= removed, expected - removed
    assert not {"visualized_imgs", ".venv", "data", "."} & removed
