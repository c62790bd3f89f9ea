"""BIG and Guided IG: against plain per-image oracles (captum, a NumPy Guided IG), and their
invariance to batch size and order."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients

from conftest import make_images, make_tiny_cnn
from saliency.core.big import EPSILONS, big, boundary_points, integrated_gradients
from saliency.core.guided_ig import guided_ig
from saliency import probability_model


def prob_cnn(seed=0, dtype=torch.float32):
    return probability_model(make_tiny_cnn(num_classes=10, seed=seed, dtype=dtype))


def predicted(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


# ---------------------------------------------------------------- BIG oracles


def attack_one(model, x, t, eps, num_steps, alpha):
    """One image, one epsilon, as the published attack runs: batch 1, CrossEntropyLoss on the
    probabilities, and the input's .grad never cleared, so it steps on the running sum."""
    x0 = x[None]
    adv = x0.clone()
    grad_sum = torch.zeros_like(x0)
    for _ in range(num_steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), torch.tensor([t]))
        grad_sum = grad_sum + torch.autograd.grad(loss, adv)[0]
        adv = adv.detach()
        delta = torch.clamp(adv + alpha * grad_sum.sign() - x0, -eps / 255, eps / 255)
        adv = torch.clamp(x0 + delta, 0, 1)
    with torch.no_grad():
        flipped = int(model(adv).argmax()) != t
    return adv[0], flipped


def boundary_one(model, x, t, epsilons, num_steps, alpha):
    """docs/PROTOCOL.md: every attack in order; the first that flips the argmax, else the first one's point."""
    runs = [attack_one(model, x, t, eps, num_steps, alpha) for eps in epsilons]
    for j, (point, flipped) in enumerate(runs):
        if flipped:
            return point, j, True
    return runs[0][0], 0, False


def boundary_loop(model, x, target, epsilons, num_steps, alpha):
    out = [boundary_one(model, x[i], int(target[i]), epsilons, num_steps, alpha) for i in range(len(x))]
    return torch.stack([o[0] for o in out]), [o[1] for o in out], [o[2] for o in out]


def captum_ig(model, x, baselines, target, steps):
    return IntegratedGradients(model).attribute(x, baselines=baselines, target=target, n_steps=steps,
                                                method="riemann_trapezoid")


# ---------------------------------------------------------------- BIG tests


def test_ig_stage_matches_captum_riemann_trapezoid():
    model = prob_cnn()
    x = make_images(3, size=16, seed=1)
    base = make_images(3, size=16, seed=2)
    t = torch.tensor([1, 4, 7])
    expected = captum_ig(model, x, base, t, 12)
    scale = float(expected.abs().max())
    assert scale > 0
    for rows in (64, 5):  # whole images per call; one image's steps in pieces
        ours = integrated_gradients(model, x, base, t, 12, max_rows=rows)
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5 * scale)


def test_boundary_search_matches_a_per_image_loop_where_boxes_bind():
    """Small boxes (0.25, 1, 4 /255 bind; 60 and 120 do not and run once): the first attack
    that flips wins, images where none flips fall back to the first attack's point."""
    model = prob_cnn(dtype=torch.float64)
    x = make_images(8, size=16, dtype=torch.float64)
    t = predicted(model, x)
    eps, steps, alpha = (0.25, 1, 4, 60, 120), 10, 0.002
    points, chosen, success = boundary_points(model, x, t, epsilons=eps, num_steps=steps, alpha=alpha)
    want_points, want_chosen, want_success = boundary_loop(model, x, t, eps, steps, alpha)
    assert chosen.tolist() == want_chosen
    assert success.tolist() == want_success
    assert len(set(want_chosen)) >= 3 and not all(want_success)  # the selection is exercised
    torch.testing.assert_close(points, want_points, rtol=0, atol=1e-12)


def test_big_matches_loop_and_captum_at_the_default_epsilons():
    """The seven default boxes never bind (50 x 0.001 < 36/255): one attack serves them all,
    and the result equals running all seven."""
    model = prob_cnn(seed=1, dtype=torch.float64)
    x = make_images(3, size=16, seed=3, dtype=torch.float64)
    t = torch.tensor([2, 5, 9])
    maps = big(model, x, t, num_steps=50, gradient_steps=10)
    want_points, want_chosen, _ = boundary_loop(model, x, t, EPSILONS, 50, 0.001)
    assert want_chosen == [0, 0, 0]
    expected = captum_ig(model, x, want_points, t, 10).float()
    assert maps.dtype == torch.float32 and maps.shape == x.shape
    assert expected.abs().max() > 0
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


def test_big_invariant_to_batch_size_and_order_with_the_same_per_image_layout():
    """max_rows=1: every model call holds one row of one image whatever the batch: bitwise."""
    model = prob_cnn()
    x = make_images(4, size=16, seed=5)
    t = torch.tensor([0, 3, 6, 9])
    kw = dict(num_steps=8, alpha=0.004, gradient_steps=6, max_rows=1)
    full = big(model, x, t, **kw)
    order = torch.tensor([2, 0, 3, 1])
    assert torch.equal(big(model, x[order], t[order], **kw), full[order])
    assert torch.equal(torch.cat([big(model, x[i : i + 1], t[i : i + 1], **kw) for i in range(4)]), full)


def test_big_invariant_to_batch_size_when_images_share_a_model_call():
    """Several images per call change the batch the kernels see; sign steps can amplify the
    rounding. Measured here: 0 (the kernels agree on this model); allowed: 1e-5 of the scale."""
    model = prob_cnn()
    x = make_images(4, size=16, seed=5)
    t = torch.tensor([0, 3, 6, 9])
    kw = dict(num_steps=8, alpha=0.004, gradient_steps=6)
    together = big(model, x, t, **kw)
    alone = torch.cat([big(model, x[i : i + 1], t[i : i + 1], **kw) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5 * float(alone.abs().max()))


def test_big_on_the_offline_model(lite0):
    model = probability_model(lite0)
    x = make_images(1, size=64, seed=7)
    t = torch.tensor([3])
    eps = (36, 280.5)  # neither box binds at 3 steps: one attack serves both
    points, chosen, success = boundary_points(model, x, t, epsilons=eps, num_steps=3, alpha=0.001)
    want_point, want_chosen, want_success = boundary_one(model, x[0], 3, eps, 3, 0.001)
    assert torch.equal(points[0], want_point)  # same batch of one row: bitwise
    assert (int(chosen), bool(success)) == (want_chosen, want_success)
    maps = big(model, x, t, epsilons=eps, num_steps=3, gradient_steps=4)
    expected = captum_ig(model, x, want_point[None], t, 4)
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


# ---------------------------------------------------------------- Guided IG oracle


def guided_ig_numpy(grad_of, image, steps, fraction, max_dist):
    """One image, float64 NumPy, zero baseline, the PAIR-code Guided IG semantics written out."""
    goal_point = image.astype(np.float64)
    start = np.zeros_like(goal_point)
    span = goal_point - start
    l1_all = np.abs(goal_point - start).sum()
    path = start.copy()
    result = np.zeros_like(goal_point)
    if np.abs(span).sum() == 0:
        return result
    for k in range(1, steps + 1):
        g = grad_of(path)  # float32, at the step's starting point
        ranked = g.copy()
        a = k / steps
        lo, hi = max(a - max_dist, 0.0), min(a + max_dist, 1.0)
        floor_pt, ceil_pt = start + span * lo, start + span * hi
        goal = l1_all * (1 - k / steps)
        while True:
            before = path.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                where = np.where(span != 0, (path - start) / span, np.nan)
            where[np.isnan(where)] = hi
            path[where < lo] = floor_pt[where < lo]
            now = np.abs(path - goal_point).sum()
            if math.isclose(goal, now, rel_tol=1e-9, abs_tol=1e-9):
                result += (path - before) * g
                break
            ranked[path == ceil_pt] = np.inf
            cut = np.quantile(np.abs(ranked), fraction, method="lower")
            pick = (np.abs(ranked) <= cut) & (ranked != np.inf)
            room = (np.abs(path - ceil_pt) * pick).sum()
            gamma = (now - goal) / room if room > 0 else np.inf
            if gamma > 1.0:
                path[pick] = ceil_pt[pick]
            else:
                path[pick] = (path + (ceil_pt - path) * gamma)[pick]
            result += (path - before) * g
            if gamma <= 1.0:
                break
    return result


def guided_loop(model, x, target, steps, fraction, max_dist):
    def grad_for(t):
        def grad_of(point):
            z = torch.from_numpy(point[None]).to(x.dtype).requires_grad_(True)
            score = torch.softmax(model(z), dim=1)[0, t]
            return torch.autograd.grad(score, z)[0][0].numpy()
        return grad_of

    return torch.from_numpy(np.stack([
        guided_ig_numpy(grad_for(int(target[i])), x[i].numpy(), steps, fraction, max_dist) for i in range(len(x))
    ]))


def guided_images(dtype):
    x = make_images(4, size=16, seed=11, dtype=dtype)
    x[1, :, :5] = 0  # black rows: features equal to the baseline
    x[3] = 0  # an image equal to the baseline: zero map
    return x


# ---------------------------------------------------------------- Guided IG tests


@pytest.mark.parametrize("steps,fraction,max_dist", [(15, 0.25, 0.02), (4, 0.1, 0.3)])
def test_guided_ig_matches_numpy_reference(steps, fraction, max_dist):
    """float64 model: the batched torch path against the single-image NumPy algorithm; they
    differ only in summation order (measured: within the float32 rounding of the output)."""
    model = prob_cnn(seed=2, dtype=torch.float64)
    x = guided_images(torch.float64)
    t = torch.tensor([1, 3, 5, 7])
    maps = guided_ig(model, x, t, n_steps=steps, fraction=fraction, max_dist=max_dist)
    expected = guided_loop(model, x, t, steps, fraction, max_dist)
    assert maps.dtype == torch.float32 and maps.shape == x.shape
    assert torch.all(maps[3] == 0)
    assert expected[:3].abs().flatten(1).amax(1).gt(0).all()
    torch.testing.assert_close(maps, expected.float(), rtol=1e-6, atol=1e-7 * float(expected.abs().max()))


def test_guided_ig_float32_model_matches_numpy_reference():
    """As published: float32 model, float64 path. Batched gradients differ from batch-1 ones
    in the last bits only; measured max |diff| 1.2e-7 of the scale."""
    model = prob_cnn(seed=2)
    x = guided_images(torch.float32)
    t = torch.tensor([1, 3, 5, 7])
    maps = guided_ig(model, x, t)
    expected = guided_loop(model, x, t, 15, 0.25, 0.02).float()
    torch.testing.assert_close(maps, expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))


def test_guided_ig_invariant_to_batch_size_and_order():
    model = prob_cnn(seed=3)
    x = make_images(4, size=16, seed=13)
    t = torch.tensor([2, 4, 6, 8])
    kw = dict(n_steps=6, max_rows=1)
    full = guided_ig(model, x, t, **kw)
    order = torch.tensor([1, 3, 0, 2])
    assert torch.equal(guided_ig(model, x[order], t[order], **kw), full[order])  # one image per call: bitwise
    assert torch.equal(torch.cat([guided_ig(model, x[i : i + 1], t[i : i + 1], **kw) for i in range(4)]), full)
    together = guided_ig(model, x, t, n_steps=6)  # all in one call: kernels see another batch (measured 1.2e-7)
    torch.testing.assert_close(together, full, rtol=1e-6, atol=1e-6 * float(full.abs().max()))


def test_guided_ig_on_the_offline_model(lite0):
    model = probability_model(lite0)
    x = make_images(1, size=64, seed=17)
    t = torch.tensor([5])
    maps = guided_ig(model, x, t, n_steps=4)
    expected = guided_loop(model, x, t, 4, 0.25, 0.02).float()
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0
    torch.testing.assert_close(maps, expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))
