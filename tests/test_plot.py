"""Figures: the heatmap against its formula, the grid's panels, the curves' lines, the CLI and the notebook."""
import os
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, load_script, make_images
from saliency.metric import auc
from labench.present import figures
from labench.compute.data import class_names
from labench.spec.identity import choose_setting
from labench.errors import run_cli
from labench.store.files import upsert_csv_row

plot = load_script("plot")

TAG = "efficientnet_lite0"
LA_STEM = TAG + "_la_spatial-range-{}_max-iter-{}_sampling-times-{}"


# ---------------------------------------------------------------- the heatmap transform


def test_heatmap_is_the_published_formula_on_a_known_array():
    # channel mean = 0, 1, ..., 99 laid out row by row; the channels differ but average to it
    mean = np.arange(100, dtype=np.float64).reshape(10, 10)
    attribution = np.stack([mean - 3, mean + 5, mean - 2])
    hm = figures.heatmap(attribution)
    # np.percentile (linear) of 0..99: 80th = 79.2, 99th = 98.01
    low, high = 79.2, 98.01
    expected = (np.clip(mean, low, high) - low) / (high - low + 1e-6)
    np.testing.assert_allclose(hm, expected, rtol=0, atol=1e-12)
    assert hm.shape == (10, 10)  # [H,W], the image's orientation (no transpose)
    assert hm[0, 0] == 0 and hm[7, 9] == 0  # 79 < 79.2
    assert hm[8, 9] == pytest.approx((89 - 79.2) / 18.81, abs=1e-6)  # row 8, column 9: mean 89
    assert hm[9, 8] == pytest.approx((98 - 79.2) / 18.81, abs=1e-6)  # just below the 99th percentile
    assert hm[9, 9] == pytest.approx(1, abs=1e-6)  # clipped to the 99th percentile
    assert np.all((hm >= 0) & (hm <= 1))


def test_heatmap_of_a_constant_map_is_zero():
    assert np.array_equal(figures.heatmap(np.full((3, 4, 4), 2.5)), np.zeros((4, 4)))


def test_signed_heatmap_keeps_the_sign_and_scales_by_the_99th_percentile():
    # 101 values, so that the 99th percentile of |mean| is exactly the 100th sorted value, 2 (not 200)
    mean = np.array([-200.0, -1.0, 0.0, 1.0, 2.0] + [0.5] * 96).reshape(101, 1)
    hm = figures.signed_heatmap(np.stack([mean + 1, mean - 1, mean]))
    np.testing.assert_allclose(hm[:5, 0], [-1, -0.5, 0, 0.5, 1], atol=1e-12)
    np.testing.assert_allclose(hm[5:, 0], 0.25, atol=1e-12)
    small = np.zeros((3, 2, 2))
    small[:, 0, 0] = 0.5
    assert np.array_equal(figures.signed_heatmap(small), np.array([[1.0, 0], [0, 0]]))  # 99th pct 0 -> max
    assert np.array_equal(figures.signed_heatmap(np.zeros((3, 2, 2))), np.zeros((2, 2)))


def test_overlay_draws_the_image_then_the_heatmap(images):
    attribution = np.random.default_rng(0).normal(size=images[0].shape)
    ax = figures.plot(attribution, images[0].numpy())
    drawn = ax.get_images()
    assert len(drawn) == 2
    np.testing.assert_allclose(drawn[0].get_array(), images[0].numpy().transpose(1, 2, 0))
    np.testing.assert_allclose(drawn[1].get_array(), figures.heatmap(attribution))
    assert drawn[1].get_alpha() == 0.5
    plt.close("all")


# ---------------------------------------------------------------- a run folder on disk


def make_run(folder, n=3, size=16, methods=("sm", "ig"), la_settings=((20, 10, 10),), curves=True):
    """data/, attributions/ and scores/ as the pipeline writes them, with known contents."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    torch.save(make_images(n, size=size), data / "img_batch.pt")
    torch.save(torch.tensor([281, 967, 657][:n] + [0] * max(0, n - 3)), data / "label_batch.pt")
    stems = [f"{TAG}_{m}" for m in methods] + [LA_STEM.format(*s) for s in la_settings]
    rng = np.random.default_rng(1)
    written = {}
    for k, stem in enumerate(stems):
        (folder / "attributions").mkdir(exist_ok=True)
        maps = rng.normal(size=(n, 3, size, size)).astype(np.float32)
        np.save(folder / "attributions" / f"{stem}_attributions.npy", maps)
        (folder / "scores").mkdir(exist_ok=True)
        steps = np.linspace(0, 1, 225)[:, None]
        ins = np.clip(steps * (0.5 + 0.1 * k) + 0.01 * np.arange(n), 0, 1)
        dele = np.clip(1 - steps * (0.5 + 0.1 * k), 0, 1) * np.ones(n)
        scores = {"ins": auc(ins.mean(1)), "del": auc(dele.mean(1))}
        if curves:
            scores.update(ins_curve=ins, del_curve=dele)
        np.savez(folder / "scores" / f"{stem}_scores.npz", **scores)
        written[stem] = (maps, scores)
    return written


def titles_of(fig):
    return [ax.get_title() for ax in fig.axes]


# ---------------------------------------------------------------- the grid


def test_grid_has_one_panel_per_available_method_in_paper_order(tmp_path):
    written = make_run(tmp_path, methods=("sm", "ig", "agi"))
    notes = []
    fig, shown, left_out = figures.build_grid(TAG, indices=[2, 0], attr_prefix=tmp_path / "attributions",
                                           data_dir=tmp_path / "data", use_model=False, log=notes.append)
    assert list(shown) == ["la", "agi", "ig", "sm"]
    assert sorted(m for m, _ in left_out) == sorted({"attexplore", "big", "deeplift", "eg", "fast_ig", "guided_ig",
                                                      "mfaba", "sg"})
    assert len(fig.axes) == 2 * (1 + 4)
    titles = titles_of(fig)
    assert titles[1:5] == ["LA\n(r=20, T=10, S=10)", "AGI", "IG", "SM"]
    names = class_names()
    assert titles[0] == f"label: {names[657]}" and titles[5] == f"label: {names[281]}"  # rows: images 2, 0
    # each panel is the published heatmap of that image's map
    la_maps = written[LA_STEM.format(20, 10, 10)][0]
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), figures.heatmap(la_maps[2]))
    sm_maps = written[f"{TAG}_sm"][0]
    np.testing.assert_allclose(fig.axes[9].get_images()[0].get_array(), figures.heatmap(sm_maps[0]))
    images = torch.load(tmp_path / "data" / "img_batch.pt")
    np.testing.assert_allclose(fig.axes[5].get_images()[0].get_array(), images[0].numpy().transpose(1, 2, 0))
    assert [t.get_text() for t in fig.texts] == ["no map on disk: AttEXplore, BIG, DeepLIFT, EG, FIG, GIG, MFABA, SG"]
    assert "left out" in notes[0] and "BIG" in notes[0]
    plt.close(fig)
    found, missing, chosen = figures.discover_maps(TAG, "default", tmp_path / "attributions", methods=["sm", "eg", "la"])
    assert list(found) == ["la", "sm"] and missing == ["eg"] and chosen == {"la": (20, 10, 10)}  # paper order


def test_grid_la_setting_choice(tmp_path):
    make_run(tmp_path, methods=(), la_settings=((10, 5, 5), (30, 10, 10), (10, 10, 10), (20, 20, 20)))
    settings = figures.outputs_on_disk(tmp_path / "attributions", "_attributions.npy", TAG)["la"]
    assert set(settings) == {(10, 5, 5), (30, 10, 10), (10, 10, 10), (20, 20, 20)}
    assert choose_setting("la", settings) == (20, 20, 20)  # the paper's default when present
    del settings[(20, 20, 20)]
    assert choose_setting("la", settings) == (10, 10, 10)  # most work, then r closest to 20 (tie: smaller)
    assert choose_setting("la", settings, {"max_iter": 5}) == (10, 5, 5)
    assert choose_setting("la", settings, {"spatial_range": 30}) == (30, 10, 10)
    assert choose_setting("la", settings, {"sampling_times": 7}) is None


def test_grid_titles_with_the_models_prediction(tiny_cnn, images):
    with torch.no_grad():
        predicted = tiny_cnn(images).argmax(1).tolist()
    names = class_names()
    assert figures.predicted_titles(images.numpy(), tiny_cnn) == [names[c] for c in predicted]


def test_grid_leaves_out_a_map_of_the_wrong_shape(tmp_path):
    make_run(tmp_path, methods=("sm",), la_settings=())
    np.save(tmp_path / "attributions" / f"{TAG}_ig_attributions.npy", np.zeros((1, 3, 16, 16), np.float32))
    fig, shown, left_out = figures.build_grid(TAG, indices=[0, 2], attr_prefix=tmp_path / "attributions",
                                           data_dir=tmp_path / "data", use_model=False, log=lambda _: None)
    assert list(shown) == ["sm"] and ("ig", f"{TAG}_ig_attributions.npy has shape (1, 3, 16, 16)") in left_out
    assert len(fig.axes) == 2 * 2
    assert fig.texts[0].get_text().endswith("; maps of the wrong shape: IG")
    plt.close(fig)


# ---------------------------------------------------------------- the curves


def test_curves_have_one_line_per_scores_file_with_its_auc(tmp_path):
    written = make_run(tmp_path, methods=("sm", "ig", "mfaba"), la_settings=((20, 10, 10), (10, 5, 5)))
    (tmp_path / "scores" / "resnet50_sm_scores.npz").write_bytes(b"another model: not read")
    fig, drawn, left_out = figures.build_curves(TAG, scores_prefix=tmp_path / "scores")
    assert [label for label, _ in drawn] == ["LA (r=10, T=5, S=5)", "LA (r=20, T=10, S=10)", "IG", "MFABA", "SM"]
    assert left_out == []
    for ax, game in zip(fig.axes, ("ins", "del")):
        lines = ax.get_lines()
        assert len(lines) == len(written) == 5
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        for line, text, (label, path) in zip(lines, legend, drawn):
            maps, scores = written[path.name[: -len("_scores.npz")]]
            np.testing.assert_allclose(line.get_ydata(), scores[f"{game}_curve"].mean(axis=1))
            np.testing.assert_allclose(line.get_xdata(), np.arange(225) / 224)
            assert text == f"{label}: {scores[game]:.4f}"
    plt.close(fig)


def test_curves_leave_out_score_files_without_curves(tmp_path):
    make_run(tmp_path, methods=("sm",), la_settings=((20, 10, 10),))
    make_run(tmp_path / "old", methods=("ig",), la_settings=(), curves=False)
    os.replace(tmp_path / "old" / "scores" / f"{TAG}_ig_scores.npz", tmp_path / "scores" / f"{TAG}_ig_scores.npz")
    notes = []
    fig, drawn, left_out = figures.build_curves(TAG, scores_prefix=tmp_path / "scores", log=notes.append)
    assert len(drawn) == 2 and [p.name for p, _ in left_out] == [f"{TAG}_ig_scores.npz"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)
    assert "AUCs only" in notes[0]
    assert [row[0] for row in figures.scores_table(TAG, scores_prefix=tmp_path / "scores")] == [
        "LA (r=20, T=10, S=10)", "IG", "SM"]
    plt.close(fig)


# ---------------------------------------------------------------- the CLI


def run_main(argv, cwd, monkeypatch, capsys):
    monkeypatch.chdir(cwd)
    code = 0
    try:
        run_cli(lambda: plot.main([str(a) for a in argv]))
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr()


def test_cli_writes_png_and_pdf_of_the_asked_size(tmp_path, monkeypatch, capsys):
    make_run(tmp_path, methods=("sm",), la_settings=((20, 10, 10),))
    code, out = run_main(["grid", "--no-model", "--indices", 0, 1, "--size", 6, 3, "--dpi", 50], tmp_path,
                         monkeypatch, capsys)
    assert code == 0, out.err
    assert "left out of the grid" in out.out and "wrote figures/efficientnet_lite0_grid.png" in out.out
    assert Image.open(tmp_path / "figures" / f"{TAG}_grid.png").size == (300, 150)

    code, out = run_main(["curves", "--out", "figs/c.pdf"], tmp_path, monkeypatch, capsys)
    assert code == 0, out.err
    assert (tmp_path / "figs" / "c.pdf").read_bytes()[:5] == b"%PDF-"

    code, out = run_main(["grid", "--no-model", "--mode", "signed", "--methods", "sm"], tmp_path, monkeypatch, capsys)
    assert code == 0 and (tmp_path / "figures" / f"{TAG}_grid_signed.png").is_file()


def test_cli_heatmaps_without_subcommand_as_published(tmp_path, monkeypatch, capsys):
    make_run(tmp_path, methods=(), la_settings=((20, 10, 10),))
    code, out = run_main(["--model", TAG, "--attr_method", "la", "--max_iter", 10, "--sampling_times", 10,
                          "--count", 2], tmp_path, monkeypatch, capsys)
    assert code == 0, out.err
    png = tmp_path / "figures" / f"{LA_STEM.format(20, 10, 10)}_heatmaps.png"
    assert Image.open(png).size == (400, 400)  # 4 x 4 inches at 100 dpi (2 rows)


@pytest.mark.parametrize("argv, words", [
    (["heatmaps", "--attr_method", "sm"], ["does not exist"]),
    (["grid", "--no-model", "--indices", 7], ["no image index below 3"]),
    (["curves", "--out", "c.svg"], [".png or .pdf"]),
])
def test_cli_one_line_errors(tmp_path, monkeypatch, capsys, argv, words):
    make_run(tmp_path, methods=(), la_settings=())
    code, out = run_main(argv, tmp_path, monkeypatch, capsys)
    lines = out.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert all(w in lines[0] for w in words)


# ---------------------------------------------------------------- the notebook


NOTEBOOK = ROOT / "plot_hm.ipynb"


def test_notebook_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert 'MODEL = "efficientnet_lite0"' in code[0].source


def test_notebook_runs_top_to_bottom_on_a_small_demo(tmp_path, monkeypatch):
    """generate_pt.py's sample photos, maps of two methods and LA, their scores and results.csv."""
    import subprocess

    import nbclient
    import nbformat

    done = subprocess.run([sys.executable, str(ROOT / "generate_pt.py"), "--sample", "--png_dir", "visualized_imgs",
                           "--out_dir", "data"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    n = len(torch.load(tmp_path / "data" / "label_batch.pt"))
    images = torch.load(tmp_path / "data" / "img_batch.pt")
    written = make_run(tmp_path / "fake", n=n, size=224, methods=("sm", "ig"), la_settings=((20, 10, 10),))
    for folder in ("attributions", "scores"):
        os.replace(tmp_path / "fake" / folder, tmp_path / folder)
    # one map that is the image itself, so that the grid's first LA panel is recognisable
    np.save(tmp_path / "attributions" / f"{LA_STEM.format(20, 10, 10)}_attributions.npy", images.numpy())
    for stem, (_, scores) in written.items():
        method = "la" if "_la_" in stem else stem.split("_")[-1]
        la = method == "la"
        upsert_csv_row(tmp_path / "results.csv", {
            "model": TAG, "attr_method": method, "spatial_range": 20 if la else "-", "max-iter": 10 if la else "-",
            "samples_number": 10 if la else "-", "insertion": round(scores["ins"], 6), "deletion": round(scores["del"], 6)})

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("LA_BENCH_ROOT", str(ROOT))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error

    text = "\n".join(out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                     for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "shown: LA, IG, SM" in text and "3 scores files drawn" in text
    pngs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if "image/png" in out.get("data", {})]
    assert len(pngs) == 2  # the grid and the curves
    # the results table: results.csv's rows of the model, in the paper's order, with their AUCs
    table = [out["data"]["text/plain"] for out in nb.cells[-1].outputs if "text/plain" in out.get("data", {})][-1]
    header, *rows = [line.split() for line in table.splitlines()]
    assert header == ["model", "attr_method", "spatial_range", "max-iter", "samples_number", "insertion", "deletion"]
    assert [row[1:3] for row in rows] == [[TAG, "la"], [TAG, "ig"], [TAG, "sm"]]
    by_method = {stem.split("_")[-1] if "_la_" not in stem else "la": s for stem, (_, s) in written.items()}
    for row in rows:
        assert float(row[6]) == pytest.approx(by_method[row[2]]["ins"], abs=1e-6)
        assert float(row[7]) == pytest.approx(by_method[row[2]]["del"], abs=1e-6)
    grid = Image.open(tmp_path / "figures" / f"{TAG}_grid.png")
    curves = Image.open(tmp_path / "figures" / f"{TAG}_curves.png")
    assert grid.size[0] == 1.25 * 4 * 150  # the image and three methods, 1.25 inches each, at 150 dpi
    assert curves.size == (1500, 600)
