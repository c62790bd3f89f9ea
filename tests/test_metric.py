"""Insertion/Deletion against a naive NumPy implementation of docs/PROTOCOL.md."""
import math

import numpy as np
import pytest
import torch

from conftest import make_images, make_tiny_cnn
from saliency.metric import InsertionDeletion, auc, descending_rank, perturbation_steps
from saliency import probability_model


def naive_curves(prob_model, images, maps, n_steps=224):
    """docs/PROTOCOL.md written literally: per image, per step, a NumPy copy of the image with values moved."""
    ins, dele = [], []
    for img, sal in zip(images.numpy(), maps.numpy()):
        order = np.flip(np.argsort(sal.ravel(), kind="stable"))
        step = math.ceil(img.size / n_steps)
        with torch.no_grad():
            c = int(prob_model(torch.from_numpy(img)[None]).argmax())
        ins_curve, del_curve = [], []
        for k in range(n_steps + 1):
            moved = order[: k * step]
            deleted = img.ravel().copy()
            deleted[moved] = 0
            inserted = np.zeros(img.size, dtype=img.dtype)
            inserted[moved] = img.ravel()[moved]
            batch = torch.from_numpy(np.stack([inserted, deleted]).reshape(2, *img.shape))
            with torch.no_grad():
                p = prob_model(batch)[:, c].numpy()
            ins_curve.append(p[0])
            del_curve.append(p[1])
        ins.append(ins_curve)
        dele.append(del_curve)
    return np.array(ins).T, np.array(dele).T


def tied_maps(shape, seed):
    """Maps with many ties: few distinct values, so the tie rule decides most of the order."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, shape, generator=g).float()


def test_rank_follows_numpy_flip_of_stable_argsort():
    maps = tied_maps((3, 3, 5, 5), 1)
    rank = descending_rank(maps)
    for m, r in zip(maps.numpy(), rank.numpy()):
        order = np.flip(np.argsort(m.ravel(), kind="stable"))
        np.testing.assert_array_equal(np.argsort(r), order)


@pytest.mark.parametrize("order", ["channel", "pixel"])
def test_curves_of_two_tie_orders_differ_exactly_where_their_steps_do(order):
    """The shortcut bench/published_effect.py takes: same steps, bitwise the same curves."""
    model = probability_model(make_tiny_cnn())
    images = make_images(4, size=10)
    maps = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    maps[1:3] = tied_maps((2, *images.shape[1:]), 4)  # images 1 and 2 tied across step boundaries
    same = [torch.equal(*(perturbation_steps(maps[i:i + 1], order, ties) for ties in ("stable", "numpy")))
            for i in range(4)]
    assert same == [True, False, False, True]
    curves = {ties: InsertionDeletion(model, batch_size=225, order=order, ties=ties, softmax=False).curves(images, maps)
              for ties in ("stable", "numpy")}
    for game in ("ins", "del"):
        differs = (curves["stable"][game] != curves["numpy"][game]).any(0).tolist()
        assert differs == [not s for s in same]


def test_perturbation_steps_count_the_moved_units():
    maps = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    steps = perturbation_steps(maps)
    for k in (0, 1, 100, 224):
        assert ((steps <= k).sum(1) == min(672 * k, 150528)).all()
    pixel = perturbation_steps(maps[:, :, :20, :20], order="pixel")  # 400 pixels, 2 per step
    assert pixel.shape == (2, 400) and ((pixel <= 3).sum(1) == 6).all()


@pytest.mark.parametrize("batch_size", [1, 37, 1000])
def test_curves_match_naive_numpy(batch_size):
    model = probability_model(make_tiny_cnn())
    images = make_images(3, size=10)
    maps = tied_maps(images.shape, 2)
    metric = InsertionDeletion(model, batch_size=batch_size, softmax=False)
    curves = metric.curves(images, maps)
    ins, dele = naive_curves(model, images, maps)
    assert curves["ins"].shape == (225, 3) and curves["del"].shape == (225, 3)
    np.testing.assert_allclose(curves["ins"].numpy(), ins, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(curves["del"].numpy(), dele, rtol=1e-5, atol=1e-6)


def test_full_size_steps_move_672_values():
    """At 3x224x224, 224 steps of 672 values: step k keeps exactly 150528 - 672 k values."""
    model = probability_model(make_tiny_cnn())
    images = make_images(1, size=224)
    maps = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    curves = InsertionDeletion(model, batch_size=225, softmax=False).curves(images, maps)
    ins, dele = naive_curves(model, images, maps)
    np.testing.assert_allclose(curves["ins"].numpy(), ins, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(curves["del"].numpy(), dele, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        black = model(torch.zeros_like(images))[0, model(images).argmax()]
        clean = model(images).max()
    assert curves["del"][-1, 0] == pytest.approx(float(black), rel=1e-5)  # all values deleted
    assert curves["ins"][-1, 0] == pytest.approx(float(clean), rel=1e-5)  # all values inserted
    assert curves["ins"][0, 0] == pytest.approx(float(black), rel=1e-5)


def test_scored_class_is_the_prediction_not_the_label():
    model = probability_model(make_tiny_cnn())
    images = make_images(2, size=8)
    curves = InsertionDeletion(model, softmax=False).curves(images, torch.rand(images.shape))
    with torch.no_grad():
        assert torch.allclose(curves["del"][0], model(images).max(1).values)


def test_explicit_scored_classes():
    """classes= (the fp32 decision under --amp) is what every point of both curves scores."""
    model = probability_model(make_tiny_cnn())
    images = make_images(2, size=8)
    maps = torch.rand(images.shape, generator=torch.Generator().manual_seed(3))
    metric = InsertionDeletion(model, batch_size=7, softmax=False)
    with torch.no_grad():
        probs = model(images)
    second = probs.topk(2, dim=1).indices[:, 1]
    curves = metric.curves(images, maps, classes=second)
    assert torch.allclose(curves["del"][0], probs.gather(1, second[:, None]).squeeze(1))
    default = metric.curves(images, maps)
    assert all(torch.equal(default[g], metric.curves(images, maps, classes=probs.argmax(1))[g]) for g in default)
    assert not torch.allclose(default["ins"], curves["ins"])
    with pytest.raises(ValueError, match="1 classes for 2 images"):
        metric.curves(images, maps, classes=torch.tensor([0]))


def test_auc_is_the_trapezoid_rule():
    assert auc([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert auc([0.0, 1.0]) == pytest.approx(0.5)
    curve = np.array([0.2, 0.9, 0.4, 0.1])
    assert auc(curve) == pytest.approx((curve.sum() - 0.1 - 0.05) / 3)
    assert auc(curve) == pytest.approx(np.trapezoid(curve, dx=1 / 3))
    # the columns of [steps, N] curves: one AUC each, as np.trapezoid gives
    curves = np.random.default_rng(0).random((5, 3))
    columns = auc(curves)
    assert isinstance(auc(curve), float) and columns.shape == (3,) and columns.dtype == np.float64
    assert columns == pytest.approx(np.trapezoid(curves, dx=1 / 4, axis=0))
    assert columns == pytest.approx([auc(curves[:, i]) for i in range(3)])


def test_shape_mismatch_is_refused():
    model = probability_model(make_tiny_cnn())
    with pytest.raises(ValueError, match="differ in shape"):
        InsertionDeletion(model, softmax=False).curves(make_images(2, size=8), torch.rand(2, 3, 8, 9))
