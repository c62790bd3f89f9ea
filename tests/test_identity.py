"""The one naming rule (labench.spec.identity): stems, maps vs scores, CSV keys, labels, parsing back,
the setting shown, and para_explore.sh deciding through it that a cell is done."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, make_images
from labench.errors import UserError
from labench.spec.identity import OutputId, choose_setting

LA_20 = {"spatial_range": 20, "max_iter": 20, "sampling_times": 20}


def test_stems_are_specs_file_names():
    assert OutputId.make("resnet50", "sm").stem == "resnet50_sm"
    la = OutputId.make("efficientnet_lite0", "la", params={"max_iter": 10})
    assert la.stem == "efficientnet_lite0_la_spatial-range-20_max-iter-10_sampling-times-20"
    assert la.scores_file == la.stem + "_scores.npz" and la.maps_file == la.stem + "_attributions.npy"
    tagged = OutputId.make("resnet50", "ig", "random", modes=("channels_last", "amp"))
    assert tagged.stem == "resnet50-random-amp-channels_last_ig"  # modes in their fixed order
    with pytest.raises(UserError, match="unknown mode"):
        OutputId.make("resnet50", "ig", modes=("turbo",))


def test_maps_keep_only_the_modes_that_change_them():
    sm = OutputId.make("m", "sm", modes=("amp", "channels_last", "substrate_blur"))
    assert sm.maps().stem == "m-channels_last_sm"  # sm maps stay fp32 under --amp; metric variants never name maps
    ig = OutputId.make("m", "ig", modes=("amp", "order_pixel"))
    assert ig.maps().stem == "m-amp_ig" and ig.stem == "m-amp-order_pixel_ig"


@pytest.mark.parametrize("out", [
    OutputId.make("efficientnet_lite0", "la", params={"spatial_range": 10, "max_iter": 30, "sampling_times": 5}),
    OutputId.make("inception_v3", "fast_ig"), OutputId.make("inception_v3", "ig"),
    OutputId.make("maxvit_t", "guided_ig", "random", modes=("amp",)),
    OutputId.make("vit_tiny_patch16_224.augreg_in21k", "sg", "my_ckpt.v2", modes=("channels_last", "substrate_mean")),
])
def test_names_parse_back_to_the_same_identity(out):
    assert OutputId.parse(out.stem) == out
    assert OutputId.parse(f"some/folder/{out.scores_file}") == out
    assert OutputId.parse(out.maps_file) == out.maps()
    row = {**out.csv_key(), "insertion": "0.5", "deletion": "0.1"}
    assert OutputId.from_csv_row({k: str(v) for k, v in row.items()}) == out


def test_csv_key_labels_and_columns():
    la = OutputId.make("resnet50", "la", "random", LA_20)
    assert la.csv_key() == {"model": "resnet50-random", "attr_method": "la", "spatial_range": 20, "max-iter": 20,
                            "samples_number": 20}
    assert OutputId.make("resnet50", "eg").csv_key()["max-iter"] == "-"
    assert la.label == "LA (r=20, T=20, S=20)" and la.column == "LA"
    assert OutputId.make("resnet50", "fast_ig").label == "FIG"
    with pytest.raises(UserError, match="does not name an output"):
        OutputId.parse("resnet50_gradcam_scores.npz")


def test_one_rule_chooses_the_setting_shown():
    settings = [(10, 5, 5), (30, 10, 10), (10, 10, 10)]
    assert choose_setting("la", settings + [(20, 20, 20)]) == (20, 20, 20)  # the default when present
    assert choose_setting("la", settings) == (10, 10, 10)  # most work, then r nearest 20, then smallest
    assert choose_setting("la", settings, {"spatial_range": 30}) == (30, 10, 10)
    assert choose_setting("la", settings, {"max_iter": 7}) is None


def test_stems_entry_names_what_eval_writes():
    lines = "--model resnet50 --weights random --attr_method sm --amp\n" \
            "--attr_method la --max_iter 5 --sampling_times 3 --channels_last --csv_path x.csv\n--attr_method nosuch\n"
    done = subprocess.run([sys.executable, "-m", "labench.flows.stems"], input=lines, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "resnet50-random-amp_sm resnet50-random_sm",
        "efficientnet_lite0-channels_last_la_spatial-range-20_max-iter-5_sampling-times-3 "
        "efficientnet_lite0-channels_last_la_spatial-range-20_max-iter-5_sampling-times-3",
        "? ?"]
    assert "unknown method 'nosuch'" in done.stderr


def test_grid_with_amp_in_eval_args_skips_the_done_cell(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    torch.save(make_images(2, size=32), data / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), data / "label_batch.pt")
    command = ["bash", str(ROOT / "para_explore.sh"), "--python", sys.executable, "--models", "efficientnet_lite0",
               "--methods", "ig", "--data_dir", str(data), "--eval_args", "--amp --batch_size 75",
               "--gen_args", "--amp"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "scores" / "efficientnet_lite0-amp_ig_scores.npz").exists()
    assert (tmp_path / "attributions" / "efficientnet_lite0-amp_ig_attributions.npy").exists()
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 skipped (done)" in second.stdout and "0 ran" in second.stdout, second.stdout
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("efficientnet_lite0-amp,ig,")
    with np.load(tmp_path / "scores" / "efficientnet_lite0-amp_ig_scores.npz") as scores:
        assert 0 <= float(scores["ins"]) <= 1
