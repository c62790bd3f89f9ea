"""Baselines sm, ig, sg, fast_ig, eg, deeplift, and the functional-ReLU ResNet-50 / VGG-16.

Each method is checked against captum or a plain per-image loop written here, for batch-size and
order invariance, and on efficientnet_lite0 (ReLU6 in place) where that matters.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import DeepLift, IntegratedGradients, Saliency

from conftest import ROOT, make_images, make_tiny_cnn, with_functional_relus
from saliency import saliency_zoo
from saliency.core.common import image_generator
from saliency.core.deeplift import deeplift
from saliency.core.eg import eg
from saliency.core.fast_ig import fast_ig
from saliency.core.ig import ig
from saliency.core.sg import sg
from saliency.core.sm import sm
from labench.nets.models import load_model, seeded_init
from saliency import attribute, probability_model

TARGETS = torch.tensor([3, 7, 0, 9])


@pytest.fixture(scope="module")
def prob_model():
    return probability_model(make_tiny_cnn())


@pytest.fixture(scope="module")
def x():
    return make_images(4, 16)


def close(actual, expected, rel=1e-5):
    """Max abs difference within rel of the expected map's scale (and the maps are not zero)."""
    scale = expected.abs().max().item()
    assert scale > 0
    assert (actual - expected).abs().max().item() <= rel * scale, (actual - expected).abs().max().item() / scale


def captum_grad(model, inputs, target):
    return Saliency(model).attribute(inputs, target=target, abs=False).detach()


# ---------------------------------------------------------------- against captum / plain loops


def test_sm_matches_captum_saliency(prob_model, x):
    maps = sm(prob_model, x, TARGETS, max_rows=3)
    assert maps.dtype == torch.float32 and maps.shape == x.shape
    close(maps, Saliency(prob_model).attribute(x, target=TARGETS, abs=True).detach())


def test_ig_matches_captum_riemann_trapezoid(prob_model, x):
    expected = IntegratedGradients(prob_model).attribute(x, target=TARGETS, n_steps=50, method="riemann_trapezoid")
    close(ig(prob_model, x, TARGETS, max_rows=37), expected.detach())  # chunks split images' steps


def test_ig_completeness_improves_with_steps(prob_model, x):
    with torch.no_grad():
        p = prob_model(x).gather(1, TARGETS.view(-1, 1)).squeeze(1)
        p0 = prob_model(torch.zeros_like(x)).gather(1, TARGETS.view(-1, 1)).squeeze(1)
    gap = (p - p0).abs()
    errors = []
    for n in (4, 16, 64):
        total = ig(prob_model, x, TARGETS, n_steps=n).flatten(1).sum(1)
        errors.append(((total - (p - p0)).abs() / gap).max().item())
    assert errors[0] > errors[1] > errors[2]
    # captum's trapezoid weights sum to (n-1)/n, so the sum tends to p(x) - p(0) like 1/n
    assert errors[2] < 0.02


def test_sg_matches_plain_loop_with_the_same_noise(prob_model, x):
    seed, indices, n_samples, stdev = 3, [10, 11, 12, 13], 6, 0.15
    expected = []
    for i, index in enumerate(indices):
        gen = image_generator(seed, index)
        grads = [captum_grad(prob_model, x[i:i + 1] + torch.randn(x.shape[1:], generator=gen) * stdev, TARGETS[i:i + 1])
                 for _ in range(n_samples)]
        expected.append(torch.cat(grads).mean(0, keepdim=True))
    maps = sg(prob_model, x, TARGETS, n_samples=n_samples, stdev=stdev, seed=seed, indices=indices, max_rows=5)
    close(maps, torch.cat(expected))
    # no noise: plain signed gradients (no abs)
    close(sg(prob_model, x, TARGETS, n_samples=2, stdev=0.0), captum_grad(prob_model, x, TARGETS))


def test_fast_ig_matches_plain_loop(prob_model, x):
    expected = []
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        loss = F.cross_entropy(prob_model(xi), TARGETS[i:i + 1])  # log-softmax of probabilities
        loss.backward()
        expected.append((xi * xi.grad).detach())
    close(fast_ig(prob_model, x, TARGETS, max_rows=3), torch.cat(expected))


def eg_plain_loop(model, x, targets, pool, seed, indices):
    maps = []
    for i, index in enumerate(indices):
        gen = image_generator(seed, index)
        ref = pool[int(torch.randint(len(pool), (1,), generator=gen))]
        alpha = float(torch.rand((), generator=gen))
        point = (ref + alpha * (x[i] - ref)).unsqueeze(0).requires_grad_(True)
        model(point)[0, targets[i]].backward()  # image i's own output for its own target
        maps.append(((x[i] - ref) * point.grad[0]).unsqueeze(0))
    return torch.cat(maps)


def test_eg_matches_plain_loop(prob_model, x):
    pool = make_images(6, 16, seed=5)
    indices = [4, 1, 7, 2]
    maps = eg(prob_model, x, TARGETS, seed=1, indices=indices, reference_images=pool, max_rows=3)
    close(maps, eg_plain_loop(prob_model, x, TARGETS, pool, 1, indices))
    assert all(m.abs().sum() > 0 for m in maps)  # no image is left with a zero map (the reference's bug)
    # without an evaluation set, the references come from the batch
    close(eg(prob_model, x, TARGETS, seed=1), eg_plain_loop(prob_model, x, TARGETS, x, 1, range(4)))


def test_deeplift_matches_captum_image_by_image(prob_model, x):
    functional = with_functional_relus(prob_model)  # the oracle: captum on the reference's functional ReLUs
    expected = torch.cat([DeepLift(functional).attribute(x[i:i + 1], target=TARGETS[i:i + 1]).detach()
                          for i in range(len(x))])
    maps = deeplift(prob_model, x, TARGETS)
    close(maps, expected)
    # captum's own batched Softmax rule centres over the batch and couples the images; ours does not
    batched = DeepLift(functional).attribute(x, target=TARGETS).detach()
    assert (batched - expected).abs().max() > 1e-3 * expected.abs().max()
    # captum's Rescale rule on the nn.ReLU modules gives other maps: ours leave ReLUs to plain gradients
    rescaled_relus = torch.cat([DeepLift(prob_model).attribute(x[i:i + 1], target=TARGETS[i:i + 1]).detach()
                                for i in range(len(x))])
    assert (rescaled_relus - expected).abs().max() > 1e-3 * expected.abs().max()


# ---------------------------------------------------------------- batch-size and order invariance


FAST = {"ig": {"n_steps": 6}, "sg": {"n_samples": 3}}


@pytest.mark.parametrize("name", ["sm", "ig", "sg", "fast_ig", "eg", "deeplift"])
def test_batch_size_and_order_invariance(name, prob_model, x):
    fn = {"sm": sm, "ig": ig, "sg": sg, "fast_ig": fast_ig, "eg": eg, "deeplift": deeplift}[name]
    pool = make_images(6, 16, seed=5)

    def run(rows, **kw):
        extra = dict(FAST.get(name, {}), **kw)
        if name in ("sg", "eg"):
            extra.update(seed=2, indices=rows)
        if name == "eg":
            extra["reference_images"] = pool
        return fn(prob_model, x[rows], TARGETS[rows], **extra)

    whole = run([0, 1, 2, 3])
    assert whole.abs().sum() > 0
    order = [2, 0, 3, 1]
    torch.testing.assert_close(run(order), whole[order], rtol=1e-5, atol=1e-7)
    split = torch.cat([run([0]), run([1, 2, 3])])
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(run([0, 1, 2, 3], max_rows=1), whole, rtol=1e-5, atol=1e-7)


def test_registry_defaults_and_call(x):
    assert saliency_zoo.ZOO["ig"].defaults == {"n_steps": 50}
    assert saliency_zoo.ZOO["sg"].defaults == {"n_samples": 50, "stdev": 0.15}
    for name in ("sm", "fast_ig", "eg", "deeplift"):
        assert saliency_zoo.ZOO[name].defaults == {}
    logits = make_tiny_cnn()
    maps = saliency_zoo.attribute("eg", logits, x[:2], TARGETS[:2], seed=2, indices=[0, 1], reference_images=x)
    close(maps, eg(probability_model(logits), x[:2], TARGETS[:2], seed=2, indices=[0, 1], reference_images=x))


# ---------------------------------------------------------------- efficientnet_lite0 (ReLU6, in place)


def test_deeplift_on_lite0_relu6_matches_captum(lite0):
    assert any(isinstance(m, nn.ReLU6) and m.inplace for m in lite0.modules())
    model = probability_model(lite0)
    x, targets = make_images(2, 64, seed=3), torch.tensor([1, 409])
    expected = torch.cat([DeepLift(model).attribute(x[i:i + 1], target=targets[i:i + 1]).detach() for i in range(2)])
    close(deeplift(model, x, targets), expected)


# ---------------------------------------------------------------- functional-ReLU models


def mutating_ops(model, inputs):
    """Names of the aten ops that write into a tensor during model(inputs)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments):
                self.ops.add(str(func))
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), Record() as record:
        out = model(inputs)
    return record.ops, out


def check_functional_copy(torchvision_net, functional_net):
    assert not any(isinstance(m, nn.ReLU) for m in functional_net.modules())
    assert not any(getattr(m, "inplace", False) for m in functional_net.modules())
    assert any(isinstance(m, nn.ReLU) for m in torchvision_net.modules())  # the original is untouched
    inputs = make_images(2, 32, seed=4)
    ops, out = mutating_ops(functional_net, inputs)
    assert ops == set()
    original_ops, expected = mutating_ops(torchvision_net, inputs)
    assert "aten.relu_.default" in original_ops
    assert out.abs().max() > 0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_resnet_mod_matches_torchvision_resnet50():
    import torchvision

    import resnet_mod

    with seeded_init(0):
        net = torchvision.models.resnet50(weights=None).eval()
        functional = resnet_mod.resnet50_functional()
    functional.load_state_dict(net.state_dict(), strict=True)
    check_functional_copy(net, functional)
    check_functional_copy(net, resnet_mod.from_torchvision(net))
    check_deeplift_on_torchvision_is_the_reference(net, functional, captum_refuses=True)


def check_deeplift_on_torchvision_is_the_reference(torchvision_net, functional_net, captum_refuses=False):
    """DeepLIFT through the library on torchvision's own network (nn.ReLU modules) gives, to the
    bit, the maps of the reference's functional-ReLU copy, by default and as published."""
    images, targets = make_images(4, 32, seed=7), torch.tensor([5, 6, 7, 8])
    on_torchvision = probability_model(torchvision_net)
    on_copy = probability_model(functional_net)
    for published in (False, True):
        maps = deeplift(on_torchvision, images, targets, published=published)
        assert torch.isfinite(maps).all() and maps.abs().sum() > 0
        assert torch.equal(maps, deeplift(on_copy, images, targets, published=published))
    assert torch.equal(attribute("deeplift", torchvision_net, images, targets), deeplift(on_copy, images, targets))
    if captum_refuses:  # a reused nn.ReLU module: captum's own DeepLift fails
        with pytest.raises((RuntimeError, AssertionError)):
            DeepLift(on_torchvision).attribute(images[:1].clone().requires_grad_(True), target=5)


def test_deeplift_runs_on_any_network_that_reuses_its_relus():
    import torchvision

    with seeded_init(1):
        net = torchvision.models.resnet18(weights=None).eval()
    maps = attribute("deeplift", net, make_images(2, 32), torch.tensor([1, 2]))
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_vgg16_mod_matches_torchvision_vgg16():
    import torchvision

    import vgg16_mod

    with seeded_init(0):
        net = torchvision.models.vgg16(weights=None).eval()
    functional = vgg16_mod.from_torchvision(net)
    assert functional.state_dict().keys() == net.state_dict().keys()
    check_functional_copy(net, functional)
    check_deeplift_on_torchvision_is_the_reference(net, functional)


def test_deeplift_models_keep_the_offline_download_error(monkeypatch):
    import torchvision.models._api as api

    from labench.compute.setup import load_inputs
    from labench.errors import UserError
    from labench.spec.run import Run

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    for arch in ("resnet50", "vgg16"):
        run = Run(method="deeplift", model=arch, weights="default", device="cpu",
                  data_dir=str(ROOT / "tests" / "no-data"), limit=1)
        with pytest.raises(UserError, match=f"could not load {arch} weights IMAGENET1K_V1.*download"):
            load_model(arch)
        with pytest.raises(UserError):
            load_inputs(run)


