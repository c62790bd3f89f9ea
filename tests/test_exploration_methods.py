"""mfaba, agi and attexplore: against straightforward per-image loops, batch-size and order
invariance, the published AGI class draw, and the orthonormal DCT.

The per-image loops below follow the published code step by step (one image at a time, one
class or sample at a time, scipy's DCT), sharing nothing with saliency.core but the per-image
generator. Numerical comparisons with the loops run in float64 (tiny CNNs), where a sign step
cannot flip from rounding, so the maps agree to ~1e-12 before the float32 cast.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.fft
import scipy.stats
import torch
import torch.nn.functional as F

from conftest import make_images, make_tiny_cnn
from saliency import saliency_zoo
from saliency.core.agi import AGI_CLASSES, agi, published_classes
from saliency.core.attexplore import attexplore
from saliency.core.common import image_generator, predict
from saliency.core.dct import dct2, dct_matrix, idct2
from saliency.core.mfaba import mfaba

F64 = torch.float64


# ---------------------------------------------------------------- per-image reference loops


def mfaba_loop(model, images, target, epsilon=0.3, alpha=0.001, max_iter=50):
    maps = []
    for x, t in zip(images, target.tolist()):
        x = x[None]
        hats, grads, cur = [x], [], x
        for _ in range(max_iter):
            leaf = cur.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(torch.softmax(model(leaf), 1)[0, t], leaf)
            grads.append(g)
            cur = torch.clamp(x + torch.clamp(cur - alpha * g.sign() - x, -epsilon, epsilon), 0, 1)
            hats.append(cur)
            with torch.no_grad():
                if model(cur).argmax(1).item() != t:
                    break
        hats, grads = torch.cat(hats), torch.cat(grads)
        maps.append(-((hats[1:] - hats[:-1]) * grads).sum(0))
    return torch.stack(maps)


def agi_loop(model, images, classes, step_size=0.05, max_iter=20, predicted=None):
    maps = []
    for i, x in enumerate(images):
        x = x[None]
        logits = model(x)
        num_classes, c = logits.shape[1], logits.argmax(1).item()
        if predicted is not None:
            c = int(predicted[i])
        total = torch.zeros_like(x)
        for l in classes:
            if l == c:
                l = l + 1 if l < num_classes - 1 else l - 1
            cur = x
            for _ in range(max_iter):
                leaf = cur.clone().requires_grad_(True)
                out = model(leaf)
                if out.argmax(1).item() == l:
                    break
                p = torch.softmax(out, 1)[0]
                (g_l,) = torch.autograd.grad(p[l], leaf, retain_graph=True)
                (g_c,) = torch.autograd.grad(p[c], leaf)
                cur = torch.clamp(x + step_size * g_l.sign(), 0, 1)
                total = total - g_c * (cur - x)
        maps.append(total[0])
    return torch.stack(maps)


def scipy_gaussian_kernel():
    pdf = scipy.stats.norm.pdf(np.linspace(-3, 3, 7))
    kernel = np.outer(pdf, pdf)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    return torch.from_numpy(np.stack([kernel] * 3)[:, None])


def attexplore_loop(model, images, target, indices, seed=0, epsilon=16 / 255, num_steps=10, num_samples=20):
    kernel = scipy_gaussian_kernel().to(images.dtype)
    alpha = epsilon / num_steps
    maps = []
    for x, t, index in zip(images, target.tolist(), indices):
        gen = image_generator(seed, index)
        size = x.shape[-1]
        canvas = int(size * 1.15)
        x = x[None]
        cur, momentum, total = x, 0, torch.zeros_like(x)
        for _ in range(num_steps):
            shape = (num_samples, *x.shape[1:])
            noise = torch.randn(shape, generator=gen) * (16 / 255)
            mask = torch.rand(shape, generator=gen) * 1.0 + 0.5
            sizes = torch.randint(size, canvas, (num_samples,), generator=gen)
            top = (torch.rand(num_samples, generator=gen, dtype=F64) * (canvas - sizes)).long()
            left = (torch.rand(num_samples, generator=gen, dtype=F64) * (canvas - sizes)).long()
            use = torch.rand(num_samples, generator=gen) < 0.5
            summed = 0
            for s in range(num_samples):
                z = (cur[0] + noise[s].to(x.dtype)).numpy()
                spectrum = scipy.fft.dctn(z, axes=(-2, -1), norm="ortho") * mask[s].to(x.dtype).numpy()
                v = torch.from_numpy(scipy.fft.idctn(spectrum, axes=(-2, -1), norm="ortho"))[None].requires_grad_(True)
                inp = v
                if use[s]:
                    r, tp, lf = int(sizes[s]), int(top[s]), int(left[s])
                    inp = F.interpolate(v, size=(r, r), mode="bilinear", align_corners=False)
                    inp = F.pad(inp, [lf, canvas - r - lf, tp, canvas - r - tp])
                    inp = F.interpolate(inp, size=(size, size), mode="bilinear", align_corners=False)
                loss = F.cross_entropy(torch.softmax(model(inp), 1), torch.tensor([t]))
                summed = summed + torch.autograd.grad(loss, v)[0]
            g = F.conv2d(summed / num_samples, kernel, padding=3, groups=3)
            g = g / g.abs().mean()
            momentum = momentum + g
            new = torch.clamp(x + torch.clamp(cur - alpha * momentum.sign() - x, -epsilon, epsilon), 0, 1)
            total = total - (new - cur) * momentum
            cur = new
        maps.append(total[0])
    return torch.stack(maps)


def assert_maps_close(actual, expected, rtol=1e-5):
    """Element-wise agreement relative to the map's scale (float32 output)."""
    expected = expected.float()
    scale = expected.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module: on the shared 2-core machine, two spinning OpenMP
    threads competing with other processes made lite0 calls ~100x slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cnn64():
    return make_tiny_cnn(dtype=F64)


@pytest.fixture(scope="module")
def x64():
    return make_images(4, 16, dtype=F64)


# ---------------------------------------------------------------- mfaba


def test_mfaba_matches_per_image_loop(cnn64, x64):
    predicted = predict(cnn64, x64)
    target = predicted.clone()
    target[3] = (predicted[3] + 1) % 10  # a misclassified image: stops after one step
    maps = mfaba(cnn64, x64, target, max_iter=30)
    ref = mfaba_loop(cnn64, x64, target, max_iter=30)
    assert maps.dtype == torch.float32 and maps.shape == x64.shape
    assert (maps.abs().flatten(1).sum(1) > 0).all()
    assert_maps_close(maps, ref)


def test_mfaba_early_stop_and_epsilon(cnn64, x64):
    target = predict(cnn64, x64)
    # with a box of 0.002 and alpha 0.001 no pixel moves more than 0.002 from x
    short = mfaba(cnn64, x64, target, epsilon=0.002, max_iter=10)
    ref = mfaba_loop(cnn64, x64, target, epsilon=0.002, max_iter=10)
    assert_maps_close(short, ref)
    # one step of a misclassified target is the whole path: -(x_1 - x_0) * g_0
    wrong = (target + 1) % 10
    one = mfaba(cnn64, x64, wrong, max_iter=50)
    assert_maps_close(one, mfaba_loop(cnn64, x64, wrong, max_iter=1))


# ---------------------------------------------------------------- agi


def test_agi_classes_equal_published_draw():
    state = random.getstate()
    try:
        random.seed(3407)
        published = random.sample(range(999), 20)
        random.seed(3407)
        assert random.sample(list(range(0, 999)), 20) == published
    finally:
        random.setstate(state)
    before = random.getstate()
    assert list(AGI_CLASSES) == published == published_classes(20)
    assert random.getstate() == before  # the module draw leaves the global RNG alone
    assert published[:5] == [58, 429, 135, 338, 220]


@pytest.mark.parametrize("model_seed, classes", [
    (2, [1, 5, 3]),  # predictions 1, 5, 1, 1: 1 -> 2 and 5 -> 6 where l = c; some rows reach l early
    (0, [9, 4]),  # predictions all 9, the last class: 9 -> 8
])
def test_agi_matches_per_image_loop(model_seed, classes, x64):
    model = make_tiny_cnn(seed=model_seed, dtype=F64)
    assert set(classes) & set(predict(model, x64).tolist())
    maps = agi(model, x64, classes=classes, max_iter=8)
    ref = agi_loop(model, x64, classes, max_iter=8)
    assert (maps.abs().flatten(1).sum(1) > 0).all()
    assert_maps_close(maps, ref)


def test_agi_explains_an_explicit_predicted_class(x64):
    model = make_tiny_cnn(seed=0, dtype=F64)
    with torch.no_grad():
        second = model(x64).topk(2, dim=1).indices[:, 1]
    classes = [1, 4, 7]
    maps = agi(model, x64, classes=classes, max_iter=6, predicted=second)
    assert_maps_close(maps, agi_loop(model, x64, classes, max_iter=6, predicted=second))
    assert torch.equal(agi(model, x64, classes=classes, max_iter=6, predicted=predict(model, x64)),
                       agi(model, x64, classes=classes, max_iter=6))


def test_agi_published_classes_on_1000_class_model():
    model = make_tiny_cnn(num_classes=1000, seed=1, dtype=F64)
    x = make_images(2, 16, seed=1, dtype=F64)
    maps = agi(model, x, max_iter=4)
    assert_maps_close(maps, agi_loop(model, x, list(AGI_CLASSES), max_iter=4))
    with pytest.raises(ValueError, match="classes"):
        agi(make_tiny_cnn(), make_images(1, 16))  # 10-class model, published classes out of range


# ---------------------------------------------------------------- attexplore


def test_dct_is_orthonormal_dct2_of_scipy():
    d = dct_matrix(9, F64)
    torch.testing.assert_close(d @ d.T, torch.eye(9, dtype=F64))
    x = torch.rand(2, 3, 9, 9, dtype=F64)
    expected = scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
    torch.testing.assert_close(dct2(x), torch.from_numpy(expected))
    torch.testing.assert_close(idct2(dct2(x)), x)


def test_attexplore_matches_per_image_loop(cnn64, x64):
    target = predict(cnn64, x64)
    indices = [5, 0, 17, 2]
    maps = attexplore(cnn64, x64, target, num_steps=3, num_samples=6, seed=4, indices=indices)
    ref = attexplore_loop(cnn64, x64, target, indices, seed=4, num_steps=3, num_samples=6)
    assert (maps.abs().flatten(1).sum(1) > 0).all()
    assert_maps_close(maps, ref)
    # the draws come from the (seed, index) generators: another seed, another map
    other = attexplore(cnn64, x64, target, num_steps=3, num_samples=6, seed=5, indices=indices)
    assert not torch.equal(other, maps)


# ---------------------------------------------------------------- batch size and order


# float32, the production dtype. CPU convolutions may round a row differently in batches of
# different sizes (~1e-7 relative); a sign step can flip where a gradient component is within
# rounding of zero, which moves one value by 2 alpha and changes the map by ~alpha * |g| there.
# Measured: bitwise or <= 2e-7 of the map's scale (tiny CNN), <= 2e-6 for efficientnet_lite0
# batched vs one image at a time; no sign flip seen. Tolerances: 1e-5 and 1e-4 of the scale.
INVARIANCE_RTOL = 1e-5
LITE0_RTOL = 1e-4


def _split_runs(fn, x, target, order, chunks, **kw):
    out = torch.empty_like(x)
    for part in np.array_split(np.array(order), chunks):
        idx = torch.as_tensor(part)
        out[idx] = fn(x[idx], target[idx], part.tolist(), **kw)
    return out


@pytest.mark.parametrize("method", ["mfaba", "agi", "attexplore"])
def test_batch_size_and_order_invariance(method):
    model = make_tiny_cnn(seed=2)
    x = make_images(5, 16, seed=3)
    target = predict(model, x)

    def run(images, labels, indices, max_rows=None):
        if method == "mfaba":
            return mfaba(model, images, labels, max_iter=20, max_rows=max_rows)
        if method == "agi":
            return agi(model, images, classes=[0, 4, 7], max_iter=6, max_rows=max_rows)
        return attexplore(model, images, labels, num_steps=3, num_samples=5, indices=indices, max_rows=max_rows)

    whole = run(x, target, list(range(5)))
    assert (whole.abs().flatten(1).sum(1) > 0).all()
    for order, chunks, max_rows in [([4, 2, 0, 3, 1], 1, None), ([1, 3, 0, 2, 4], 3, None), ([0, 1, 2, 3, 4], 1, 3)]:
        other = _split_runs(run, x, target, order, chunks, max_rows=max_rows)
        assert_maps_close(other, whole, rtol=INVARIANCE_RTOL)


# ---------------------------------------------------------------- efficientnet_lite0, tiny settings


def test_mfaba_lite0(lite0):
    x = make_images(2, 32, seed=5)
    target = predict(lite0, x)
    maps = mfaba(lite0, x, target, max_iter=4)
    assert torch.isfinite(maps).all() and (maps.abs().flatten(1).sum(1) > 0).all()
    assert_maps_close(maps, mfaba_loop(lite0, x, target, max_iter=4), rtol=LITE0_RTOL)


def test_agi_lite0(lite0):
    x = make_images(2, 32, seed=6)
    maps = agi(lite0, x, classes=list(AGI_CLASSES[:3]), max_iter=3)
    assert torch.isfinite(maps).all() and (maps.abs().flatten(1).sum(1) > 0).all()
    assert_maps_close(maps, agi_loop(lite0, x, list(AGI_CLASSES[:3]), max_iter=3), rtol=LITE0_RTOL)


def test_attexplore_lite0(lite0):
    x = make_images(2, 32, seed=7)
    target = predict(lite0, x)
    maps = attexplore(lite0, x, target, num_steps=2, num_samples=3, indices=[10, 11])
    assert torch.isfinite(maps).all() and (maps.abs().flatten(1).sum(1) > 0).all()
    ref = attexplore_loop(lite0, x, target, [10, 11], num_steps=2, num_samples=3)
    assert_maps_close(maps, ref, rtol=LITE0_RTOL)


# ---------------------------------------------------------------- registry


def test_registry_defaults_and_calls():
    assert saliency_zoo.get_method("mfaba").defaults == {"epsilon": 0.3, "alpha": 0.001, "max_iter": 50}
    assert saliency_zoo.get_method("agi").defaults == {"step_size": 0.05, "max_iter": 20, "topk": 20}
    assert saliency_zoo.get_method("attexplore").defaults == {"epsilon": 16 / 255, "num_steps": 10, "num_samples": 20}
    model = make_tiny_cnn(num_classes=1000, seed=4)
    x = make_images(2, 16, seed=4)
    labels = predict(model, x)
    for name, params in [("mfaba", {"max_iter": 5}), ("agi", {"max_iter": 2, "topk": 3}),
                         ("attexplore", {"num_steps": 2, "num_samples": 2})]:
        maps = saliency_zoo.attribute(name, model, x, labels, indices=[0, 1], **params)
        assert maps.shape == x.shape and maps.dtype == torch.float32 and torch.isfinite(maps).all()
