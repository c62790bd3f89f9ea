"""Random weights are a function of (architecture, seed): the same network in every script,
process, torchrun rank and test order; loading a model never moves the global random state."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, make_images, make_tiny_cnn
from labench.compute.setup import output_id
from labench.flows.cli import attribution_parser, eval_parser
from labench.spec.identity import OutputId
from labench.nets.models import load_model, weights_tag


def digest(model) -> str:
    """SHA-256 of every tensor of a model's state dict, names included."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_random_weights_depend_on_the_architecture_and_seed_alone():
    first = load_model("resnet18", weights="random")
    torch.rand(1000)  # the global random state moves between the loads
    again = load_model("resnet18", weights="random", seed=0)
    other = load_model("resnet18", weights="random", seed=1)
    assert digest(first) == digest(again) != digest(other)
    conv = first[-1].conv1.weight
    assert conv.std() > 0 and not torch.equal(conv, other[-1].conv1.weight)


@pytest.mark.parametrize("name, weights", [("resnet18", "random"), ("test_vit", "random"),
                                           ("efficientnet_lite0", "default")])
def test_loading_a_model_leaves_the_global_random_state_alone(name, weights, monkeypatch):
    def reseeds_cuda(*args):
        raise AssertionError("loading a model reseeded the CUDA generators")

    # torch.manual_seed would reseed every CUDA generator, which fork_rng(devices=[]) does not restore
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeds_cuda)
    monkeypatch.setattr(torch.cuda, "manual_seed", reseeds_cuda)
    before = torch.get_rng_state()
    load_model(name, weights=weights, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_every_test_starts_from_the_same_global_random_state():
    """conftest.fixed_global_rng: an unseeded draw in a test does not depend on earlier tests."""
    reference = torch.Generator().manual_seed(0)
    assert torch.equal(torch.get_rng_state(), reference.get_state())
    assert np.random.get_state()[1][0] == np.random.RandomState(0).get_state()[1][0]


def test_the_seed_names_random_weights_only_when_it_is_not_zero():
    assert weights_tag("random") == weights_tag("random", 0) == "random"
    assert weights_tag("random", 12) == "random_seed12"
    assert weights_tag("default", 3) == "" and weights_tag("IMAGENET1K_V2", 3) == "IMAGENET1K_V2"
    base = ["--model", "resnet50", "--weights", "random", "--attr_method", "sm"]
    # today's default names stay byte for byte what they were
    assert output_id(eval_parser().parse_args(base)).scores_file == "resnet50-random_sm_scores.npz"
    assert output_id(attribution_parser().parse_args(base)).maps_file == "resnet50-random_sm_attributions.npy"
    seeded = output_id(eval_parser().parse_args([*base, "--seed", "3"]))
    assert seeded.scores_file == "resnet50-random_seed3_sm_scores.npz"
    assert seeded.maps_file == "resnet50-random_seed3_sm_attributions.npy"
    assert OutputId.parse(seeded.scores_file) == seeded
    # the method's draws take the same seed: default weights keep their names (the seed is in the chunks' manifest)
    default = ["--model", "resnet50", "--attr_method", "sm", "--seed", "3"]
    assert output_id(attribution_parser().parse_args(default)).maps_file == "resnet50_sm_attributions.npy"


def test_another_seed_of_a_seeded_method_is_another_output_and_row():
    """The maps of la, attexplore, eg and sg depend on the seed: --seed N names them -seed<N> (seed 0
    keeps today's names); random weights name the seed in their tag already."""
    from labench.spec.identity import read_model_tag

    base = ["--model", "efficientnet_lite0", "--attr_method", "la"]
    default = output_id(eval_parser().parse_args(base))
    assert default.scores_file == "efficientnet_lite0_la_spatial-range-20_max-iter-20_sampling-times-20_scores.npz"
    seeded = output_id(eval_parser().parse_args([*base, "--seed", "2"]))
    assert seeded.maps_file == "efficientnet_lite0-seed2_la_spatial-range-20_max-iter-20_sampling-times-20_attributions.npy"
    assert seeded == output_id(attribution_parser().parse_args([*base, "--seed", "2"])) and seeded.seed == 2
    assert OutputId.parse(seeded.scores_file) == seeded
    row = {**seeded.csv_key(), "insertion": "0.5", "deletion": "0.1"}
    assert row["model"] == "efficientnet_lite0-seed2" and OutputId.from_csv_row(row) == seeded
    variant = output_id(eval_parser().parse_args([*base, "--seed", "2", "--substrate", "blur"]))
    assert variant.model_tag == "efficientnet_lite0-substrate_blur-seed2" and variant.maps() == seeded
    assert read_model_tag(variant.model_tag) == ("efficientnet_lite0", "", ("substrate_blur",), 2)
    sg = output_id(eval_parser().parse_args(["--attr_method", "sg", "--seed", "1"]))
    assert sg.maps_file == "efficientnet_lite0-seed1_sg_attributions.npy"
    random = output_id(attribution_parser().parse_args(["--model", "resnet50", "--weights", "random",
                                                        "--attr_method", "la", "--seed", "3"]))
    assert random.model_tag == "resnet50-random_seed3" and random.seed == 0


# Runs a script as its command line does, up to the model it builds: prints that model's digest.
# A global draw of argv[1] numbers first gives every process its own global random state.
SPY = """
import hashlib, os, runpy, sys
import torch
import labench.compute.attributions, labench.compute.scoring
from labench.compute import setup

def load_and_report(args, **kwargs):
    model = setup.load_inputs(args, **kwargs)[2]
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.cpu().contiguous().numpy().tobytes())
    print("weights", h.hexdigest(), flush=True)
    os._exit(0)

torch.rand(int(sys.argv[1]))
labench.compute.attributions.load_inputs = labench.compute.scoring.load_inputs = load_and_report
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_generate_and_eval_build_the_same_random_network(tmp_path):
    """Each script in its own process, as torchrun ranks and resumed runs are, from its own global
    random state: --weights random is the same network in generate_attributions.py and eval.py
    (and in this process)."""
    torch.save(make_images(1, size=32), tmp_path / "img_batch.pt")
    torch.save(torch.tensor([3]), tmp_path / "label_batch.pt")
    np.save(tmp_path / "resnet18-random_sm_attributions.npy", np.zeros((1, 3, 32, 32), np.float32))
    common = ["--model", "resnet18", "--weights", "random", "--attr_method", "sm", "--data_dir", str(tmp_path),
              "--device", "cpu"]

    def weights_of(script, draws, *extra):
        done = subprocess.run([sys.executable, "-c", SPY, str(draws), str(ROOT / script), *common, *extra],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()[-1]

    generate = weights_of("generate_attributions.py", 1, "--prefix", str(tmp_path / "maps"))
    evaluate = weights_of("eval.py", 7, "--attr_prefix", str(tmp_path), "--prefix", str(tmp_path / "scores"))
    assert generate == evaluate == digest(load_model("resnet18", weights="random"))


def test_random_fixtures_give_the_same_networks_in_any_order():
    """make test's random networks (conftest's tiny CNN, test_any_classifier's tiny ViT, the
    random torchvision and timm models) built in two orders, with global draws in between."""
    builders = {
        "tiny_cnn": make_tiny_cnn,
        "tiny_cnn seed 1": lambda: make_tiny_cnn(seed=1),
        "test_vit": lambda: load_model("test_vit", weights="random"),
        "test_resnet seed 1": lambda: load_model("test_resnet", weights="random", seed=1),
        "resnet18": lambda: load_model("resnet18", weights="random"),
    }

    def build(order):
        built = {}
        for name in order:
            torch.rand(17)
            built[name] = digest(builders[name]())
        return built

    assert build(list(builders)) == build(reversed(list(builders)))
