"""The sanity checks (issue 25): the cascade randomises exactly the layers each stage names, on a
copy, from its own generator; the random logit draws another class per image; the similarity
measures against scipy and scikit-image; a model-blind "method" scores 1 at every check while
Saliency on a tiny network falls below it; the modes name files and reach the scripts."""
import csv

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from conftest import call_script, make_images, make_tiny_cnn
from labench.compute import setup
from labench.flows import sanity
from labench.spec import identity
from labench.errors import UserError
from labench.present.figures import heatmap
from labench.spec.identity import OutputId
from labench.nets.models import Normalize
from labench.nets.randomisation import (CASCADE_STAGES, layer_units, random_other_classes, randomised_model, stage_size,
                                   stage_units)
from labench.spec.run import Run
from labench.stats.similarity import heatmap_ssim, normalised_heatmap, rank_correlation, similarity
from saliency import attribute, saliency_zoo
from saliency.core.params import protocol
from saliency.saliency_zoo import Method

SIZE, N = 16, 6


# ---------------------------------------------------------------- item 1: the cascade


def parameters(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_stage_k_randomises_exactly_the_layers_it_names_on_a_copy():
    model = make_tiny_cnn()
    before, buffers = parameters(model), {n: b.clone() for n, b in model.named_buffers()}
    assert [u.name for u in layer_units(model)] == ["1", "2", "5", "9"]  # conv, BatchNorm, conv, linear
    assert [stage_size(4, k) for k in range(1, CASCADE_STAGES + 1)] == [1, 2, 3, 4, 4]
    rng = torch.get_rng_state()
    previous = None
    for stage in range(1, CASCADE_STAGES + 1):
        copy = randomised_model(model, stage, seed=3)
        named = {p for unit in stage_units(model, stage) for p in unit.parameters}
        after = parameters(copy)
        changed = {n for n in after if not torch.equal(after[n], before[n])}
        assert changed == named, stage
        assert all((after[n] != before[n]).all() for n in named)  # every value redrawn
        assert all(torch.equal(b, buffers[n]) for n, b in copy.named_buffers())  # running statistics kept
        if previous is not None:  # a cascade: the layers of the stage before keep their random values
            assert all(torch.equal(after[n], previous[n]) for n in previous_named)
        previous, previous_named = after, named
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # the user's model untouched
    assert torch.equal(torch.get_rng_state(), rng)  # global random state untouched
    again, other = parameters(randomised_model(model, 2, seed=3)), parameters(randomised_model(model, 2, seed=4))
    assert all(torch.equal(again[n], parameters(randomised_model(model, 2, seed=3))[n]) for n in again)
    assert not torch.equal(again["9.weight"], other["9.weight"])


def test_the_random_values_keep_each_tensor_s_scale():
    model = make_tiny_cnn()
    weight = model[5].weight
    drawn = randomised_model(model, CASCADE_STAGES, seed=0)[5].weight
    assert float(drawn.mean()) == pytest.approx(float(weight.mean()), abs=0.03)
    assert float(drawn.std()) == pytest.approx(float(weight.std()), rel=0.1)
    assert float(randomised_model(model, CASCADE_STAGES)[2].weight.std()) > 0.3  # constant ones: standard deviation 1


def meta_network(build):
    with torch.device("meta"):
        return nn.Sequential(Normalize((0.5,) * 3, (0.5,) * 3), build())


def test_layers_of_the_benchmark_architectures():
    """Built on the meta device (no weights): the rule reads the module tree only."""
    import timm
    import torchvision

    lite0 = [u.name for u in layer_units(meta_network(lambda: timm.create_model("tf_efficientnet_lite0")))]
    assert len(lite0) == 21 and lite0[:3] == ["1.conv_stem", "1.bn1", "1.blocks.0.0"]
    assert lite0[-4:] == ["1.blocks.6.0", "1.conv_head", "1.bn2", "1.classifier"]
    resnet = [u.name for u in layer_units(meta_network(torchvision.models.resnet50))]
    assert len(resnet) == 19 and resnet[:3] == ["1.conv1", "1.bn1", "1.layer1.0"]
    assert resnet[-2:] == ["1.layer4.2", "1.fc"]
    vgg = [u.name for u in layer_units(meta_network(torchvision.models.vgg16))]
    assert len(vgg) == 16 and vgg[0] == "1.features.0" and vgg[-3:] == ["1.classifier.0", "1.classifier.3",
                                                                        "1.classifier.6"]
    assert [stage_size(21, k) for k in range(1, 6)] == [1, 6, 11, 16, 21]


# ---------------------------------------------------------------- item 2: the random logit


def test_random_other_classes_are_per_image_and_never_the_excluded_one():
    excluded = torch.arange(400) % 10
    drawn = random_other_classes(5, range(400), excluded, 10)
    assert ((drawn != excluded) & (drawn >= 0) & (drawn < 10)).all()
    assert set(drawn.tolist()) == set(range(10))
    counts = torch.bincount((drawn - excluded) % 10, minlength=10)  # offsets 1..9, none 0
    assert counts[0] == 0 and counts[1:].min() > 20
    alone = torch.cat([random_other_classes(5, [i], excluded[i:i + 1], 10) for i in (7, 3)])
    assert torch.equal(alone, drawn[[7, 3]])  # a function of (seed, image index), not of the batch
    assert not torch.equal(random_other_classes(6, range(400), excluded, 10), drawn)


# ---------------------------------------------------------------- item 3: the measures


def hand_made_maps():
    g = np.random.default_rng(0)
    a = np.round(g.normal(size=(3, 12, 12)), 1)  # rounded: ties
    b = np.round(a + g.normal(scale=0.8, size=a.shape), 1)
    return a, b


def test_rank_correlations_against_scipy():
    a, b = hand_made_maps()
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert rank_correlation(np.abs(a), np.abs(b)) == pytest.approx(
        spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic, abs=1e-12)
    values = similarity(a, -a)
    assert values["spearman_signed"] == pytest.approx(-1) and values["spearman_abs"] == pytest.approx(1)
    assert rank_correlation(a, np.exp(a)) == pytest.approx(1)  # ranks only
    assert rank_correlation(np.zeros_like(a), b) == 0.0  # a constant map ranks nothing


def ssim_by_hand(x, y, data_range=1.0):
    """SSIM of two 7 x 7 images: one window (the whole image), sample (co)variances."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cov = ((x - mx) * (y - my)).sum() / (x.size - 1)
    return (2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


def test_ssim_of_the_normalised_heatmaps_against_scikit_image_and_by_hand():
    a, b = hand_made_maps()
    ha, hb = normalised_heatmap(a), normalised_heatmap(b)
    by_hand = np.clip(np.abs(a).mean(0) / np.percentile(np.abs(a).mean(0), 99), 0, 1)
    np.testing.assert_allclose(ha, by_hand, rtol=1e-12)
    assert ha.min() >= 0 and ha.max() == 1
    assert heatmap_ssim(a, b) == pytest.approx(structural_similarity(ha, hb, data_range=1.0), abs=1e-12)
    small_a, small_b = a[:, :7, :7], b[:, :7, :7]
    assert heatmap_ssim(small_a, small_b) == pytest.approx(
        ssim_by_hand(normalised_heatmap(small_a), normalised_heatmap(small_b)), abs=1e-9)
    assert heatmap_ssim(a, -5 * a) == pytest.approx(1, abs=1e-12)  # normalised |map|: scale and sign change nothing
    assert heatmap_ssim(a, b) < 0.9


def test_the_figure_draws_faint_maps_like_strong_ones():
    a, _ = hand_made_maps()
    np.testing.assert_allclose(heatmap(sanity.unit_scale(1e-9 * a)), heatmap(a / np.abs(a).max()), atol=1e-6)
    assert heatmap(1e-9 * a).max() < 0.01  # the published heatmap alone draws it black


# ---------------------------------------------------------------- the modes


def test_the_checks_are_modes_that_name_files_and_exclude_each_other():
    out = OutputId.make("efficientnet_lite0", "sm", modes=("cascade3",))
    assert out.maps_file == "efficientnet_lite0-cascade3_sm_attributions.npy" and OutputId.parse(out.maps_file) == out
    assert OutputId.make("resnet50", "la", "random", modes=("random_logit", "fast")).model_tag == \
        "resnet50-random-fast-random_logit"
    assert identity.cascade_stage(("fast", "cascade5")) == 5 and identity.cascade_stage(("random_logit",)) is None
    with pytest.raises(UserError, match="alternatives"):
        Run(modes=("cascade1", "cascade2"))
    with pytest.raises(UserError, match="alternatives"):
        Run(modes=("cascade1", "random_logit"))


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    images = make_images(N, size=SIZE, seed=5)
    images[0] = 0.5  # a flat image: the model-blind method's map is all zeros
    torch.save(images, folder / "img_batch.pt")
    torch.save(torch.tensor([1, 2, 3, 4, 5, 6]), folder / "label_batch.pt")
    return folder


@pytest.fixture
def tiny(monkeypatch):
    """The scripts' model replaced by the tiny CNN (10 classes)."""
    model = make_tiny_cnn(seed=2)
    monkeypatch.setattr(setup, "load_model", lambda *args, **kwargs: model)
    return model


def generate(data, prefix, capsys, *flags):
    code, err = call_script("generate_attributions", ["--data_dir", data, "--prefix", prefix, "--device", "cpu",
                                                      "--seed", 7, *flags], capsys)
    assert code == 0, err
    return np.load(next(prefix.glob("*_attributions.npy")))


def test_generate_attributions_under_the_checks(data, tmp_path, capsys, tiny):
    images, labels = torch.load(data / "img_batch.pt"), torch.load(data / "label_batch.pt")
    cascade = generate(data, tmp_path / "a", capsys, "--attr_method", "sm", "--cascade2")
    want = attribute("sm", randomised_model(tiny, 2, seed=7), images, labels)
    np.testing.assert_allclose(cascade, want.numpy(), rtol=1e-6, atol=1e-9)
    # the other class: drawn per image, so maps do not depend on the batch
    other = random_other_classes(7, range(N), labels, 10)
    for prefix, batch in (("b", 4), ("c", 1)):
        maps = generate(data, tmp_path / prefix, capsys, "--attr_method", "sm", "--random_logit", "--batch_size", batch)
        np.testing.assert_allclose(maps, attribute("sm", tiny, images, other).numpy(), rtol=1e-6, atol=1e-9)
    # la explains the trained model's prediction at every stage
    la_flags = ["--attr_method", "la", "--max_iter", 2, "--sampling_times", 3, "--cascade5"]
    maps = generate(data, tmp_path / "d", capsys, *la_flags)
    predicted = tiny(images).argmax(1)
    want = attribute("la", randomised_model(tiny, 5, seed=7), images, labels, seed=7, predicted=predicted,
                     indices=range(N), spatial_range=20, max_iter=2, sampling_times=3)
    np.testing.assert_allclose(maps, want.numpy(), rtol=1e-5, atol=1e-8)
    code, err = call_script("generate_attributions", ["--data_dir", data, "--cascade1", "--random_logit"], capsys)
    assert code == 2 and "alternatives" in err


# ---------------------------------------------------------------- item 4 and 6: the command


@protocol("Edges")
def edges(model, images, target, *, max_rows=None):
    """A model-blind map: the absolute differences of neighbouring pixels."""
    dx, dy = torch.zeros_like(images), torch.zeros_like(images)
    dx[..., :, 1:] = images[..., :, 1:] - images[..., :, :-1]
    dy[..., 1:, :] = images[..., 1:, :] - images[..., :-1, :]
    return dx.abs() + dy.abs()


@pytest.fixture
def blind(monkeypatch):
    monkeypatch.setitem(saliency_zoo.ZOO, "edges", Method("edges", edges, "logit", "image gradient magnitude"))


def read_cells(out):
    with open(out / "sanity.csv") as f:
        return {(r["method"], r["check"], r["measure"]): (float(r["mean"]), float(r["high"]))
                for r in csv.DictReader(f)}


def test_a_model_blind_method_scores_one_and_saliency_falls_below(data, tmp_path, tiny, blind, capsys):
    before = parameters(tiny)
    out = tmp_path / "sanity"
    request = sanity.Request(model="tiny", methods=("sm", "edges"), images=N, data_dir=str(data), device="cpu",
                             out=str(out))
    written = sanity.run(request, log=lambda line: None)
    cells = read_cells(out)
    checks = ["stage 1", "stage 2", "stage 3", "stage 4", "stage 5", "random logit"]
    assert {c for _, c, _ in cells} == set(checks)
    for check in checks:
        for measure in ("spearman_abs", "spearman_signed", "ssim"):
            assert cells["edges", check, measure][0] == pytest.approx(1.0, abs=1e-9)
    last = cells["sm", "stage 5", "spearman_abs"]
    assert last[1] < 0.5, last  # the whole interval far below 1 (measured: 0.02 [-0.02, 0.05])
    assert cells["sm", "stage 5", "ssim"][1] < 0.5
    assert all(torch.equal(p, before[n]) for n, p in tiny.named_parameters())
    text = (out / "sanity.md").read_text()
    assert "SSIM" in text and "| SM |" in text and "stage 5: the last 4 of 4 layers, 1 .. 9" in text
    # an image whose trained map is constant ranks nothing: left out, and said so
    assert "Edges: image 0 left out" in text and "SM: image" not in text
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(checks) * (N + N - 1) and {r["image"] for r in rows if r["method"] == "edges"} == {
        "1", "2", "3", "4", "5"}
    assert (out / "tiny_sanity.png").stat().st_size > 0 and len(written) == 5
    # resumable: a rerun computes no map again and writes the same tables
    maps = sorted((out / "attributions").glob("*.npy"))
    assert len(maps) == 2 * 7
    stamps = [p.stat().st_mtime_ns for p in maps]
    code, err = call_script("sanity", ["--model", "tiny", "--methods", "sm", "edges", "--images", N, "--data_dir", data,
                                       "--device", "cpu", "--out", out], capsys)  # the script: the same request
    assert code == 0, err
    assert [p.stat().st_mtime_ns for p in maps] == stamps and read_cells(out) == cells
    code, err = call_script("sanity", ["--stages", 6, "--data_dir", data], capsys)
    assert code == 2 and err.startswith("error: --stages must lie in 1..5")


def test_bad_requests_name_the_fix(data, tmp_path):
    for fields, words in [({"stages": (0,)}, "--stages must lie in 1..5"), ({"methods": ("nosuch",)}, "unknown method"),
                          ({"figure_image": 9}, "--figure_image"), ({"modes": ("cascade2",)}, "drop it"),
                          ({"images": 0}, "--images")]:
        with pytest.raises(UserError, match=words):
            sanity.plan(sanity.Request(**fields))
    with pytest.raises(UserError, match="holds 6 images"):
        sanity.run(sanity.Request(images=9, figure_image=0, methods=("sm",), data_dir=str(data), out=str(tmp_path)))
