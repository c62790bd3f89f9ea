"""A method of one's own beside the twelve: registered from Python (saliency.register) or named
as module:function / file.py:function on the command line, run by generate_attributions.py,
eval.py, para_explore.sh and tables.py as a thirteenth method; its bad inputs are one-line errors."""
import csv
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ROOT, call_script, make_images, make_tiny_cnn
from saliency import SaliencyError, ZOO, attribute, get_method, register

# README's method file, as written there, and two broken methods beside it
README_METHOD = next(block for block in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
                     if block.startswith("# my_method.py"))
GRADIENT_X_INPUT = README_METHOD + textwrap.dedent('''


    def wrong_shape(model, images, target):
        return images[:, :1]


    def not_finite(model, images, target):
        return images * float("nan")
''')


def gradient_x_input_oracle(model, images, target):
    """The same quantity image by image, written here."""
    maps = []
    for image, t in zip(images, target):
        x = image[None].clone().requires_grad_(True)
        torch.softmax(model(x), dim=1)[0, t].backward()
        maps.append((x.grad * image[None]).detach())
    return torch.cat(maps)


@pytest.fixture
def method_file(tmp_path, monkeypatch):
    (tmp_path / "my_method.py").write_text(GRADIENT_X_INPUT)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("gradient_x_input", "wrong_shape", "not_finite", "mine"):
        ZOO.pop(name, None)  # the registry is the process's: leave it as it was


def test_a_file_function_runs_through_attribute_as_the_oracle_says(method_file):
    model, images, target = make_tiny_cnn(), make_images(3), torch.tensor([1, 5, 7])
    maps = attribute("my_method.py:gradient_x_input", model, images, target)
    torch.testing.assert_close(maps, gradient_x_input_oracle(model, images, target), rtol=1e-5, atol=1e-8)
    entry = get_method("gradient_x_input")
    assert entry.source == "my_method.py:gradient_x_input" and entry.display == "gradient_x_input"
    assert get_method("my_method.py:gradient_x_input") is entry  # named again: the same entry
    assert torch.equal(attribute("gradient_x_input", model, images, target), maps)


def test_register_a_python_function(method_file):
    def mine(model, images, target):
        return images * target.view(-1, 1, 1, 1)

    entry = register(mine, display="Mine")
    images, model = make_images(2), make_tiny_cnn()
    assert entry.display == "Mine" and get_method("mine") is entry
    assert torch.equal(attribute("mine", model, images, torch.tensor([2, 3])),
                       images * torch.tensor([2.0, 3.0]).view(-1, 1, 1, 1))
    assert register(mine) is entry  # the same function again: nothing changes

    def again(model, images, target):  # the cell that defines mine, edited and run again
        return -images

    with pytest.raises(SaliencyError, match="'mine' is taken .*replace=True"):
        register(again, "mine")
    register(again, "mine", replace=True)
    assert torch.equal(attribute("mine", model, images, torch.tensor([2, 3])), -images)


@pytest.mark.parametrize("spec, message", [
    ("no_such_module:f", "cannot import 'no_such_module'"),
    ("missing.py:f", "no file missing.py"),
    ("my_method.py:nosuch", "has no function 'nosuch'"),
    ("my_method.py:wrong_shape", r"returned \(2, 1, 16, 16\) for images \(2, 3, 16, 16\)"),
    ("my_method.py:not_finite", "NaN or infinite"),
    ("sm:", "does not name a function"),
])
def test_bad_methods_are_one_line_errors(method_file, spec, message):
    with pytest.raises(SaliencyError, match=message):
        attribute(spec, make_tiny_cnn(), make_images(2), torch.tensor([1, 2]))


def test_a_name_of_the_twelve_is_not_taken(method_file):
    def sm(model, images, target):
        return images

    with pytest.raises(SaliencyError, match="'sm' is taken"):
        register(sm)
    assert get_method("sm").source == ""


def test_scripts_and_tables_run_it_as_a_thirteenth_method(method_file, capsys):
    data = method_file / "data"
    data.mkdir()
    images, labels = make_images(2, size=32, seed=5), torch.tensor([1, 2])
    torch.save(images, data / "img_batch.pt")
    torch.save(labels, data / "label_batch.pt")
    common = ["--model", "efficientnet_lite0", "--weights", "random", "--device", "cpu", "--batch_size", "2"]
    for method in ("my_method.py:gradient_x_input", "sm"):
        for script in ("generate_attributions", "eval"):
            code, err = call_script(script, [*common, "--attr_method", method], capsys)
            assert code == 0, err
    maps = np.load(method_file / "attributions" / "efficientnet_lite0-random_gradient_x_input_attributions.npy")
    from labench.nets.models import load_model

    model = load_model("efficientnet_lite0", weights="random")
    np.testing.assert_allclose(maps, gradient_x_input_oracle(model, images, labels).numpy(), rtol=1e-4, atol=1e-9)
    with open(method_file / "results.csv") as f:
        rows = {r["attr_method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"gradient_x_input", "sm"} and rows["gradient_x_input"]["spatial_range"] == "-"
    scores = np.load(method_file / "scores" / "efficientnet_lite0-random_gradient_x_input_scores.npz")
    assert float(rows["gradient_x_input"]["insertion"]) == pytest.approx(float(scores["ins"]), abs=1e-6)
    code, err = call_script("plot", ["heatmaps", "--model", "efficientnet_lite0", "--weights", "random", "--attr_method",
                                     "my_method.py:gradient_x_input", "--count", "2"], capsys)
    assert code == 0, err
    assert (method_file / "figures" / "efficientnet_lite0-random_gradient_x_input_heatmaps.png").exists()
    ZOO.pop("gradient_x_input")  # as in a new process: plot.py grid imports it from its name
    from labench.present.figures import build_grid

    _, shown, left_out = build_grid("efficientnet_lite0", "random", [0, 1], use_model=False,
                                    methods=["sm", "my_method.py:gradient_x_input", "ig"], log=lambda line: None)
    assert list(shown) == ["sm", "gradient_x_input"] and left_out == [("ig", "no map on disk")]
    ZOO.pop("gradient_x_input")  # tables.py runs in a process that never imported the method
    code, err = call_script("tables", ["--csv", "results.csv", "--out", "tables"], capsys)
    assert code == 0, err
    table = (method_file / "tables" / "insertion.md").read_text()
    assert "| SM | gradient_x_input |" in table
    statistics = (method_file / "tables" / "statistics.md").read_text()
    assert "gradient_x_input" in statistics


@pytest.mark.slow  # the grid's own processes; the scripts' test above covers the rest
def test_the_grid_runs_it_in_its_own_processes(method_file):
    data = method_file / "data"
    data.mkdir()
    torch.save(make_images(2, size=32, seed=6), data / "img_batch.pt")
    torch.save(torch.tensor([3, 4]), data / "label_batch.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "para_explore.sh"), "--models", "efficientnet_lite0:random", "--methods",
                           "my_method.py:gradient_x_input", "--limit", "2", "--data_dir", data, "--device", "cpu",
                           "--python", sys.executable, "--eval_args", "--batch_size 450"],
                          cwd=method_file, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 cells: 1 ran, 0 skipped (done), 0 failed" in done.stdout
    assert (method_file / "scores" / "efficientnet_lite0-random_gradient_x_input_scores.npz").exists()


def test_maps_computed_elsewhere_are_scored_and_tabulated_under_their_name(tmp_path, capsys, monkeypatch):
    from captum.attr import IntegratedGradients

    from labench.nets.models import load_model
    from saliency import InsertionDeletion, auc

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    images, labels = make_images(2, size=32, seed=8), torch.tensor([3, 9])
    torch.save(images, tmp_path / "data" / "img_batch.pt")
    torch.save(labels, tmp_path / "data" / "label_batch.pt")
    model = load_model("efficientnet_lite0", weights="random")
    maps = IntegratedGradients(model).attribute(images, target=labels, n_steps=8).detach()
    np.save(tmp_path / "captum_ig.npy", maps.numpy())
    common = ["--model", "efficientnet_lite0", "--weights", "random", "--device", "cpu", "--batch_size", "450",
              "--runtime", "torch"]
    code, err = call_script("eval", [*common, "--attr_method", "captum_ig", "--maps", "captum_ig.npy"], capsys)
    assert code == 0, err
    scores = np.load(tmp_path / "scores" / "efficientnet_lite0-random_captum_ig_scores.npz")
    direct = InsertionDeletion(model, batch_size=450).curves(images, maps)
    np.testing.assert_allclose(scores["ins_auc"], auc(direct["ins"]), atol=1e-6)
    np.testing.assert_allclose(scores["del_auc"], auc(direct["del"]), atol=1e-6)
    with open(tmp_path / "results.csv") as f:
        assert [r["attr_method"] for r in csv.DictReader(f)] == ["captum_ig"]
    for name, words in [("ig", "a name of your own"), ("x:y", "a name of your own")]:
        code, err = call_script("eval", [*common, "--attr_method", name, "--maps", "captum_ig.npy"], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "short.npy", maps.numpy()[:1])
    code, err = call_script("eval", [*common, "--attr_method", "short_maps", "--maps", "short.npy"], capsys)
    assert code == 2 and "shape" in err
    ZOO.pop("captum_ig", None)
    ZOO.pop("short_maps", None)
