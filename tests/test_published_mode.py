"""--published end to end: naming, groups by global index, resume, the metric's tie order, the
grid and the tables (docs/PROTOCOL.md "As published"). The numerics are tests/test_published_methods.py's."""
import subprocess

import numpy as np
import pytest
import torch

from conftest import ROOT, call_script, load_script, make_images, make_tiny_cnn
from labench.compute import attributions, setup
from labench.flows import cli
from labench.present import tables
from labench.spec.identity import OutputId, maps_modes
from saliency import InsertionDeletion, attribute, get_method, probability_model
from saliency.core.eg import eg
from saliency.core.la import la
from saliency.metric import INSERTION
from saliency.errors import SaliencyError

N, SIZE = 5, 32
LA_SMALL = ["--attr_method", "la", "--max_iter", 2, "--sampling_times", 3]
LA_KW = {"spatial_range": 20, "max_iter": 2, "sampling_times": 3}
LA_STEM = "efficientnet_lite0-published_la_spatial-range-20_max-iter-2_sampling-times-3"


call = call_script


@pytest.fixture
def tiny(monkeypatch):
    """The scripts' model replaced by a tiny 1000-class CNN (published LA draws from 1000 classes):
    the plumbing is under test here, and efficientnet_lite0 resizes every image to 224."""
    model = make_tiny_cnn(num_classes=1000)
    monkeypatch.setattr(setup, "load_model", lambda *args, **kwargs: model)
    return model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published") / "data"
    folder.mkdir()
    torch.save(make_images(N, size=SIZE, seed=3), folder / "img_batch.pt")
    torch.save(torch.tensor([1, 2, 3, 4, 5]), folder / "label_batch.pt")
    return folder


def generate(data, prefix, capsys, *extra):
    code, err = call("generate_attributions", ["--data_dir", data, "--prefix", prefix, "--device", "cpu", *extra],
                     capsys)
    assert code == 0, err
    return err


# ---------------------------------------------------------------- registry and naming


def test_registry_published_groups():
    assert [m for m in ["la", "agi", "deeplift", "eg", "sm", "ig", "mfaba"] if get_method(m).has_published] == [
        "la", "agi", "deeplift", "eg"]
    groups = {}
    for model in ["resnet50", "maxvit_t"]:
        for m in ["la", "agi", "deeplift", "eg"]:
            args = cli.attribution_parser().parse_args(["--published", "--attr_method", m, "--model", model])
            groups[model, m] = setup.published_group(args)
    assert groups == {("resnet50", "la"): 64, ("resnet50", "agi"): 64, ("resnet50", "deeplift"): 4,
                      ("resnet50", "eg"): 4, ("maxvit_t", "la"): 32, ("maxvit_t", "agi"): 32,
                      ("maxvit_t", "deeplift"): 2, ("maxvit_t", "eg"): 4}
    sm = cli.attribution_parser().parse_args(["--published", "--attr_method", "sm", "--model", "resnet50"])
    assert setup.published_group(sm) is None
    assert setup.default_batch_size("la", "maxvit_t") == 32 and setup.default_batch_size("big", "resnet50") == 8
    # on a CPU at most CPU_BATCH (16) images a call, so a chunk is minutes; a published group stays whole
    assert [setup.default_batch_size(m, "resnet50", "cpu") for m in ["la", "deeplift", "big"]] == [16, 8, 8]
    assert setup.published_batch_size(setup.default_batch_size("la", "resnet50", "cpu"), 64) == 64


def test_attribute_passes_published_through():
    model, images = make_tiny_cnn(), make_images(4, size=16)
    labels = torch.tensor([0, 1, 2, 3])
    got = attribute("eg", model, images, labels, reference_images=images, published=True, group_size=2)
    want = eg(probability_model(model), images, labels, reference_images=images, published=True, group_size=2)
    assert torch.equal(got, want)
    assert not torch.equal(got, attribute("eg", model, images, labels, reference_images=images))
    with pytest.raises(SaliencyError, match="no published variant"):
        attribute("sm", model, images, labels, published=True)
    with pytest.raises(SaliencyError, match="only with published"):
        attribute("eg", model, images, labels, reference_images=images, group_size=2)


def test_names_published_maps_only_where_they_change():
    la_id = OutputId.make("resnet50", "la", modes=("published",))
    assert la_id.maps_file == "resnet50-published_la_spatial-range-20_max-iter-20_sampling-times-20_attributions.npy"
    assert la_id.scores_file == "resnet50-published_la_spatial-range-20_max-iter-20_sampling-times-20_scores.npz"
    sm_id = OutputId.make("resnet50", "sm", modes=("published",))
    assert sm_id.maps_file == "resnet50_sm_attributions.npy"
    assert sm_id.scores_file == "resnet50-published_sm_scores.npz"
    assert sm_id.csv_key()["model"] == "resnet50-published"
    assert OutputId.parse(la_id.scores_file) == la_id
    assert maps_modes("deeplift", ("amp", "published")) == ("published",)
    args = cli.eval_parser().parse_args(["--published", "--amp", "--attr_method", "ig"])
    assert setup.output_id(args).stem == "efficientnet_lite0-amp-published_ig"


def test_batches_hold_whole_groups():
    assert setup.published_batch_size(5, 2) == 6 and setup.published_batch_size(8, 64) == 64
    assert setup.published_batch_size(64, 64) == 64 and setup.published_batch_size(65, 4) == 68
    args = cli.attribution_parser().parse_args(["--group_size", "3"])
    with pytest.raises(Exception, match="only with --published"):
        setup.published_group(args)
    args = cli.attribution_parser().parse_args(["--published", "--attr_method", "deeplift", "--model", "maxvit_t"])
    assert setup.published_group(args) == 2


# ---------------------------------------------------------------- generate and eval


def test_generate_published_la_is_the_method_on_whole_groups(data, tmp_path, capsys, tiny):
    group = ["--published", "--group_size", 2, *LA_SMALL]
    generate(data, tmp_path / "b2", capsys, *group, "--batch_size", 2)
    generate(data, tmp_path / "b5", capsys, *group, "--batch_size", 5)
    b2 = np.load(tmp_path / "b2" / f"{LA_STEM}_attributions.npy")
    b5 = np.load(tmp_path / "b5" / f"{LA_STEM}_attributions.npy")

    images = torch.load(data / "img_batch.pt")
    direct = torch.cat([la(tiny, images[a:b], published=True, group_size=2, indices=range(a, b), **LA_KW)
                        for a, b in [(0, 2), (2, 4), (4, 5)]]).numpy()
    np.testing.assert_allclose(b2, direct, rtol=1e-5, atol=1e-6 * np.abs(direct).max())
    np.testing.assert_allclose(b5, b2, rtol=1e-5, atol=1e-6 * np.abs(b2).max())
    # the coupling is real: not the default maps
    alone = la(tiny, images[:2], **LA_KW).numpy()
    assert not np.allclose(alone, b2[:2], rtol=1e-3)

    # resume: a crash after the first chunk, a refused resume with another group, then the same settings
    resumed = tmp_path / "resumed"
    real, calls = attributions.attribute, []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    argv = [*group, "--batch_size", 2, "--chunk", 2]
    attributions.attribute = crash_on_second
    try:
        with pytest.raises(KeyboardInterrupt):
            load_script("generate_attributions").main(
                [str(a) for a in ["--data_dir", data, "--prefix", resumed, "--device", "cpu", *argv]])
    finally:
        attributions.attribute = real
    parts = resumed / f"{LA_STEM}_attributions.npy.parts"
    assert len(list(parts.glob("0*.npy"))) == 1
    code, err = call("generate_attributions", ["--data_dir", data, "--prefix", resumed, "--device", "cpu",
                                               "--published", "--group_size", 1, *LA_SMALL[:6], "--batch_size", 2,
                                               "--chunk", 2], capsys)
    assert code == 2 and "other settings" in err
    generate(data, resumed, capsys, *argv)
    assert np.array_equal(np.load(resumed / f"{LA_STEM}_attributions.npy"), b2)


def test_names_and_tie_order_of_eval_published(data, tmp_path, capsys, tiny):
    attr, scores, csv_path = tmp_path / "attr", tmp_path / "scores", tmp_path / "results.csv"
    common = ["--data_dir", data, "--attr_method", "sm", "--limit", 2, "--device", "cpu", "--published"]
    err = generate(data, attr, capsys, *common[2:])
    assert "already computes as published" in err
    assert [p.name for p in attr.iterdir()] == ["efficientnet_lite0_sm_attributions.npy"]
    code, err = call("eval", [*common, "--attr_prefix", attr, "--prefix", scores, "--csv_path", csv_path,
                              "--batch_size", 450, "--runtime", "torch"], capsys)  # compared bitwise with PyTorch's metric
    assert code == 0, err
    assert [p.name for p in scores.iterdir()] == ["efficientnet_lite0-published_sm_scores.npz"]
    got = np.load(scores / "efficientnet_lite0-published_sm_scores.npz")

    maps = torch.from_numpy(np.load(attr / "efficientnet_lite0_sm_attributions.npy"))
    images = torch.load(data / "img_batch.pt")[:2]
    want = InsertionDeletion(tiny, batch_size=450, ties="numpy").curves(images, maps)
    assert np.array_equal(got["ins_curve"], want["ins"].numpy())
    assert np.array_equal(got["del_curve"], want["del"].numpy())
    assert "efficientnet_lite0-published,sm," in csv_path.read_text()


# ---------------------------------------------------------------- grid and tables


def test_grid_dry_run_passes_published_to_both_scripts(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "para_explore.sh"), "--dry-run", "--published", "--models", "resnet50",
                           "--methods", "sm la", "--spatial_ranges", "20", "--max_iters", "20", "--sampling_times",
                           "20"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 4 and all(" --published" in c for c in commands)
    assert "scores/resnet50-published_sm_scores.npz" in done.stdout
    assert "scores/resnet50-published_la_spatial-range-20_max-iter-20_sampling-times-20_scores.npz" in done.stdout
    assert not list(tmp_path.iterdir())


def test_tables_keep_published_rows_beside_the_default(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("model,attr_method,spatial_range,max-iter,samples_number,insertion,deletion\n"
                    "vgg16,sm,-,-,-,0.25,0.12\n"
                    "resnet50-published,sm,-,-,-,0.21,0.11\n"
                    "vgg16-published,sm,-,-,-,0.26,0.13\n"
                    "resnet50,sm,-,-,-,0.2,0.1\n")
    result, _ = tables.main_tables(tables.load_results(path))
    ins = result[INSERTION]
    assert list(ins.index) == ["resnet50", "resnet50-published", "vgg16", "vgg16-published"]
    assert ins.loc["resnet50-published", "sm"] == 0.21 and ins.loc["resnet50", "sm"] == 0.2
