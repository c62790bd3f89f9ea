"""The benchmarks run, and count what they claim to count (timings themselves are not tested)."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, load_script, make_images


def run_bench(script, *args, cwd):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def table_rows(text):
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in text.splitlines() if line.startswith("| "))}


def test_roofline_counts_each_methods_passes(tmp_path):
    out = run_bench("roofline.py", "--model", "efficientnet_lite0", "--size", 32, "--images", 2,
                    "--methods", "sm", "ig", "metric", "--batches", 1, 2, "--data_dir", tmp_path, cwd=tmp_path)
    rows = table_rows(out)
    # stage | images per call | rows per model call | fwd rows/img | bwd rows/img | s/img | limit | ratio | img/s
    assert rows["sm"][3:5] == ["1", "1"]
    assert rows["ig"][3:5] == ["50", "50"]
    assert rows["metric"][3:5] == ["451", "0"]  # 2 x 225 perturbed images + the clean image
    assert all(float(rows[name][7]) > 0 for name in ("sm", "ig", "metric"))


def test_speed_modes_reports_the_shift_of_each_mode(tmp_path):
    (tmp_path / "data").mkdir()
    torch.save(make_images(1, size=64), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1]), tmp_path / "data" / "label_batch.pt")
    out = run_bench("speed_modes.py", "--attr_method", "sm", "ig", "--modes", "amp", "--data_dir", tmp_path / "data",
                    cwd=tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("| sm") or line.startswith("| ig")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert [(c[0], c[1], c[2]) for c in cells] == [("sm", "fp32", "fp32"), ("sm", "amp", "fp32"),
                                                   ("ig", "fp32", "fp32"), ("ig", "amp", "bf16")]
    assert cells[0][8] == "+0.0000 / +0.0000"
    assert not (tmp_path / "results.csv").exists()  # everything went to a temporary folder


def test_published_effect_compares_each_mode_and_the_tie_order(tmp_path):
    (tmp_path / "data").mkdir()
    torch.save(make_images(4, size=64), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2, 3, 4]), tmp_path / "data" / "label_batch.pt")
    out = run_bench("published_effect.py", "--images", 4, "--methods", "eg", "--data_dir", tmp_path / "data",
                    "--out", tmp_path / "out", "--device", "cpu", cwd=tmp_path)
    rows = table_rows(out)
    # comparison | ins A | ins B | ins B - A | del A | del B | del B - A | r of maps: median / min
    published = rows["eg: default -> --published"]
    assert published[2] != published[1]  # the published gather: one map per group of 4, explaining classes 0..3
    (ties_label,) = [label for label in rows if label.startswith("eg default maps: ties")]
    rescored = int(ties_label.split("(")[1].split()[0])
    assert rescored <= 4 and ties_label.endswith("of 4 images re-scored)")
    ties = rows[ties_label]
    assert ties[1] == published[1]  # A: the default maps' own scores
    if rescored == 0:
        assert ties[2] == ties[1] and ties[5] == ties[4]
    assert (tmp_path / "out" / "ties").is_dir()


def test_published_effect_writes_tiny_differences_so_they_do_not_read_as_zero():
    signed = load_script("bench/published_effect").signed
    assert [signed(x) for x in (0.01234, -0.00051, 2.1e-7, -4.9e-5, 0.0)] == [
        "+0.0123", "-0.0005", "+2.1e-07", "-4.9e-05", "+0.0000"]


def test_published_effect_pearson_names_the_constant_maps(tmp_path):
    map_pearson = load_script("bench/published_effect").map_pearson
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3, 4, 4))
    b = a.copy()
    b[1] = -a[1]  # r = -1
    b[2] = 0.0    # constant: no r
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    assert map_pearson(tmp_path / "a.npy", tmp_path / "b.npy") == "0.000 / -1.000 (1 of 3 pairs have a constant map)"
    np.save(tmp_path / "c.npy", np.zeros_like(a))
    assert map_pearson(tmp_path / "a.npy", tmp_path / "c.npy") == "- (all 3 pairs have a constant map)"


def test_runtime_projection_scales_the_metric_hours_by_the_measured_ratio():
    projection = load_script("bench/runtime").projection
    args = type("Args", (), {"maps_hours": 2.0, "metric_hours": 6.0})()
    lines = projection(args, {(1, "eager"): 4.0, (1, "openvino"): 2.0, (2, "eager"): 3.0, (2, "onnxruntime"): 1.0})
    # threads | side | metric h (6 h x side / eager) | report h (+ 2 h of maps) | report vs eager (8 h / report h)
    assert [line for line in lines if line[:4] in ("| 1 ", "| 2 ")] == [
        "| 1 | eager | 6.00 | 8.00 | 1.00x |", "| 1 | openvino | 3.00 | 5.00 | 1.60x |",
        "| 2 | eager | 6.00 | 8.00 | 1.00x |", "| 2 | onnxruntime | 2.00 | 4.00 | 2.00x |"]


@pytest.mark.slow
def test_runtime_bench_times_and_compares_every_side(tmp_path):
    """A tiny run (16x16 images, one row count, one round): every side appears, and the AUC shift
    table compares each side and the eager floors against eager."""
    (tmp_path / "data").mkdir()
    torch.save(make_images(2, size=16), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), tmp_path / "data" / "label_batch.pt")
    out = run_bench("runtime.py", "--data_dir", tmp_path / "data", "--rows", 4, "--threads", 1, "--rounds", 1,
                    "--timing_images", 1, "--images", 2, "--out", tmp_path / "out", cwd=tmp_path)
    assert "| 1 | 4 | " in out and "| threads | side | metric h |" in out
    shift = [line for line in out.splitlines() if line.startswith("| floor: eager, 1 rows per call |")]
    assert len(shift) == 2 and all(line.endswith("| 0 |") for line in shift)  # same classes
    for runtime in ("openvino", "onnxruntime"):
        if importlib.util.find_spec(runtime) is not None:
            assert f"| {runtime} | ins |" in out


FAKE_CLONE = {  # the published repository's layout, each module saying where it came from
    "saliency/la.py": "def la(model, data, target, spatial_range=10, max_iter=30, sampling_times=20):\n"
                      "    return 'published la', tuple(data.shape)\n",
    "saliency/agis.py": "from saliency.core import pgd_step\n\ndef agi(model, data, target, epsilon=0.05):\n"
                        "    return pgd_step()\n",
    "saliency/core/__init__.py": "import cv2\nimport torch\nKERNEL = torch.zeros(1).cuda()\n\n"
                                 "def pgd_step():\n    return 'published pgd_step'\n",
    "evaluation.py": "from utils import *\n\nclass CausalMetric:\n    origin = ORIGIN\n",
    "utils.py": "ORIGIN = 'published utils'\n",
}


def load_published_code():
    spec = importlib.util.spec_from_file_location("published_code", ROOT / "bench" / "published_code.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_code_is_imported_beside_ours_and_leaves_ours_in_place(tmp_path):
    """bench/versus_published.py's loader: the clone's saliency/utils under their own names, its OpenCV
    import and import-time .cuda() shimmed on a machine without them, and this project's modules
    and torch.Tensor.cuda exactly as before."""
    for name, text in FAKE_CLONE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    import saliency

    def state():
        return sys.modules["saliency"], sys.modules.get("utils"), torch.Tensor.cuda, "cv2" in sys.modules

    before = state()
    published = load_published_code().load_published(tmp_path)
    assert published.la(None, torch.zeros(2, 3, 4, 4), None) == ("published la", (2, 3, 4, 4))
    assert published.agi(None, None, None) == "published pgd_step"
    assert published.CausalMetric.origin == "published utils"
    assert state() == before and sys.modules["saliency"] is saliency
    assert "saliency.la" not in sys.modules and "evaluation" not in sys.modules


def test_a_folder_that_is_not_the_published_clone_is_named(tmp_path):
    with pytest.raises(SystemExit, match="not a clone of the published LA repository .*git clone"):
        load_published_code().load_published(tmp_path)
