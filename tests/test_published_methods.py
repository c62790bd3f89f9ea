"""published=True of la, agi, deeplift and eg against literal oracles of the published code
(docs/PROTOCOL.md "As published"): each oracle runs one group as the published batch, in plain loops."""
import numpy as np
import pytest
import torch
from captum.attr import DeepLift

from conftest import make_images, make_tiny_cnn, with_functional_relus
from saliency.core.agi import agi
from saliency.models import probability_model
from saliency.core.deeplift import deeplift
from saliency.core.eg import draw_eg_references, eg
from saliency.core.la import la, published_la_classes
from saliency.errors import SaliencyError

LA_KW = {"spatial_range": 10, "max_iter": 3, "sampling_times": 4}


def close(actual, expected, rtol=1e-6):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(expected.abs().max()))


def published_replacement(selected, c, num_classes=1000):
    """[B, len(selected)] targets: each drawn l for every image, l+1 (l-1 for the last class)
    where it equals the image's prediction."""
    rows = []
    for l in selected:
        t = torch.full_like(c, int(l))
        t[t == c] = int(l) + 1 if int(l) < num_classes - 1 else int(l) - 1
        rows.append(t)
    return torch.stack(rows, dim=1)


def la_published_oracle(model, x, targets, spatial_range, max_iter):
    """The published la() on one batch x (= one group): gradients of the batch sums
    p[:, t].sum() and p[:, c].sum(). targets: [B, S-1], already replaced."""
    with torch.no_grad():
        c = model(x).argmax(-1)
    eps = x / spatial_range
    total = torch.zeros_like(x)
    for k in range(targets.shape[1]):
        t = targets[:, k]
        state = x.clone()
        for _ in range(max_iter):
            state.requires_grad_(True)
            p = torch.softmax(model(state), dim=-1)
            g_t = torch.autograd.grad(p[:, t].sum(), state, retain_graph=True)[0]
            g_c = torch.autograd.grad(p[:, c].sum(), state)[0]
            state = (x + eps * g_t.sign()).clamp(0, 1).detach()
            total = total - g_c * (state - x)
    state = x.clone()
    for _ in range(max_iter):
        state.requires_grad_(True)
        p = torch.softmax(model(state), dim=1)
        g_c = torch.autograd.grad(p[:, c].sum(), state)[0]
        state = (x - eps * g_c.sign()).clamp(0, 1).detach()
        total = total - g_c * (state - x)
    return total


def global_numpy_draws(sampling_times, count):
    """np.random.seed(3407), then `count` successive np.random.choice calls on the global RNG,
    restoring the global state afterwards."""
    saved = np.random.get_state()
    try:
        np.random.seed(3407)
        return [np.random.choice(1000, sampling_times, replace=False) for _ in range(count)]
    finally:
        np.random.set_state(saved)


def same_numpy_state(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


def test_la_published_matches_literal_group_oracle():
    model = make_tiny_cnn(num_classes=1000, dtype=torch.float64)
    x = make_images(7, dtype=torch.float64)
    draws = global_numpy_draws(4, 3)
    # make group 0's first drawn class the prediction of some of its images: the c+1 replacement
    with torch.no_grad():
        logits = model(x[:3])
        gap = (logits.max(1).values - logits[:, int(draws[0][0])]).sort().values
        model[-1].bias[int(draws[0][0])] += float(gap[1] + gap[2]) / 2
        c = model(x).argmax(1)
    assert 0 < int((c[:3] == int(draws[0][0])).sum()) < 3

    before = np.random.get_state()
    maps = la(model, x, **LA_KW, published=True, group_size=3)
    assert same_numpy_state(before, np.random.get_state())
    assert [list(published_la_classes(4, b)) for b in range(3)] == [d.tolist() for d in draws]

    expected = torch.cat([
        la_published_oracle(model, x[rows], published_replacement(draws[b][:-1], c[rows]), 10, 3)
        for b, rows in enumerate([slice(0, 3), slice(3, 6), slice(6, 7)])
    ]).float()
    assert maps.dtype == torch.float32 and maps.abs().max() > 0
    close(maps, expected)
    assert not torch.allclose(maps, la(model, x, **LA_KW))


def test_la_published_couples_explicit_classes_per_column():
    """classes= still overrides the draw; each column's group multiset couples the images."""
    model = make_tiny_cnn(num_classes=10, dtype=torch.float64)
    x = make_images(4, dtype=torch.float64)
    with torch.no_grad():
        c = model(x).argmax(1)
    classes = torch.stack([c, (c + 3) % 10, torch.tensor([1, 2, 3, 4])], dim=1)  # column 0 hits c
    maps = la(model, x, **LA_KW, classes=classes, published=True, group_size=2)
    replaced = torch.where(classes == c[:, None], torch.where(c[:, None] == 9, c[:, None] - 1, c[:, None] + 1), classes)
    expected = torch.cat([la_published_oracle(model, x[g], replaced[g], 10, 3) for g in (slice(0, 2), slice(2, 4))])
    close(maps, expected.float())
    with pytest.raises(SaliencyError, match="1000 classes"):  # the published draw needs ImageNet's classes
        la(model, x, **LA_KW, published=True, group_size=2)


def test_la_published_does_not_depend_on_call_batching():
    model = make_tiny_cnn(num_classes=1000, dtype=torch.float64)
    x = make_images(6, dtype=torch.float64)
    kw = dict(LA_KW, published=True, group_size=3)
    whole = la(model, x, **kw)
    halves = torch.cat([la(model, x[:3], indices=[0, 1, 2], **kw), la(model, x[3:], indices=[3, 4, 5], **kw)])
    close(halves, whole, rtol=1e-9)
    close(la(model, x, max_rows=2, **kw), whole, rtol=1e-9)  # one image's runs in two pieces
    # the global indices decide the group and its classes
    assert not torch.allclose(la(model, x[3:], indices=[0, 1, 2], **kw), whole[3:])
    with pytest.raises(SaliencyError, match="whole groups"):
        la(model, x[1:3], indices=[1, 2], **kw)


def agi_published_oracle(model, x, classes, step_size, max_iter, literal_bookkeeping=True):
    """The published agi on one batch x (= one group), with its leave_index bookkeeping
    (literal_bookkeeping=False: every image leaves the first time it reaches its target)."""
    with torch.no_grad():
        c = model(x).argmax(-1)
    total = torch.zeros_like(x)
    for l in classes:
        t = published_replacement([l], c, 10)[:, 0]
        state = x.clone()
        leave = list(range(len(x)))
        acc = torch.zeros_like(x)
        for i in range(max_iter):
            state.requires_grad_(True)
            out = model(state)
            pred = out.argmax(-1)
            if literal_bookkeeping:
                for j in leave:
                    if pred[j] == t[j]:
                        leave.remove(j)
            else:
                leave = [j for j in leave if pred[j] != t[j]]
            if not leave:
                break
            p = torch.softmax(out, dim=1)
            g_t = torch.autograd.grad(p[:, t].sum(), state, retain_graph=True)[0]
            g_c = torch.autograd.grad(p[:, c].sum(), state)[0]
            state = (x + step_size * g_t.sign()).clamp(0, 1).detach()
            delta = -g_c * (state - x)
            if i == 0:
                acc = delta
            else:
                acc[leave] += delta[leave]
        total = total + acc
    return total


def test_agi_published_matches_literal_oracle_with_leave_index_bookkeeping():
    model = make_tiny_cnn(num_classes=10, seed=3, dtype=torch.float64)
    x = make_images(5, seed=2, dtype=torch.float64)
    classes, kw = [2, 5, 7], {"step_size": 0.3, "max_iter": 4}
    maps = agi(model, x, classes=classes, **kw, published=True, group_size=3)
    groups = [slice(0, 3), slice(3, 5)]
    expected = torch.cat([agi_published_oracle(model, x[g], classes, 0.3, 4) for g in groups]).float()
    fixed = torch.cat([agi_published_oracle(model, x[g], classes, 0.3, 4, False) for g in groups]).float()
    assert not torch.allclose(expected, fixed)  # this case exercises the published bookkeeping
    close(maps, expected)
    assert not torch.allclose(maps, agi(model, x, classes=classes, **kw))


@pytest.mark.filterwarnings("ignore::UserWarning")  # captum's notes on hooks and requires_grad
def test_deeplift_published_is_captum_on_each_group():
    model = probability_model(make_tiny_cnn())
    x, target = make_images(6), torch.tensor([1, 4, 4, 7, 0, 2])
    maps = deeplift(model, x, target, indices=range(4, 10), published=True, group_size=4)
    functional = with_functional_relus(model)  # captum on the reference's functional ReLUs
    expected = torch.cat([DeepLift(functional).attribute(x[g], baselines=torch.zeros_like(x[g]), target=target[g])
                          for g in (slice(0, 4), slice(4, 6))])  # global groups {4..7}, {8, 9}
    close(maps, expected.detach())
    assert not torch.allclose(maps, deeplift(model, x, target), rtol=1e-3)
    close(deeplift(model, x, target, published=True, group_size=1), deeplift(model, x, target), rtol=1e-5)


def test_eg_published_first_image_of_each_group_sums_classes_0_to_m():
    model = probability_model(make_tiny_cnn())
    x, pool, target = make_images(6), make_images(5, seed=1), torch.tensor([1, 4, 4, 7, 0, 2])
    indices = list(range(4, 10))  # global groups {4..7} (m = 4) and {8, 9} (m = 2)
    maps = eg(model, x, target, seed=3, indices=indices, reference_images=pool, published=True, group_size=4)
    positions, alphas = draw_eg_references(len(pool), 3, indices)
    for row, m in ((0, 4), (4, 2)):
        ref = pool[positions[row]]
        point = (ref + alphas[row] * (x[row] - ref)).requires_grad_(True)
        out = model(point[None])
        score = sum(out[0, i] for i in range(m))
        expected = (x[row] - ref) * torch.autograd.grad(score, point)[0]
        assert expected.abs().max() > 0
        close(maps[row], expected)
    assert torch.count_nonzero(maps[[1, 2, 3, 5]]) == 0


def small_calls(x, **kw):
    model = make_tiny_cnn(num_classes=10)
    prob = probability_model(model)
    target = torch.tensor([1, 2, 3, 4])
    return {
        "la": lambda: la(model, x, **LA_KW, classes=torch.tensor([[1, 5, 8]] * 4), **kw),
        "agi": lambda: agi(model, x, classes=[1, 5], max_iter=3, **kw),
        "deeplift": lambda: deeplift(prob, x, target, **kw),
        "eg": lambda: eg(prob, x, target, seed=1, **kw),
    }


@pytest.mark.parametrize("name", ["la", "agi", "deeplift", "eg"])
def test_default_unchanged_and_group_size_ignored(name):
    x = make_images(4)
    plain = small_calls(x)[name]()
    assert torch.equal(small_calls(x, published=False)[name](), plain)
    assert torch.equal(small_calls(x, published=False, group_size=0)[name](), plain)
    assert not torch.equal(small_calls(x, published=True, group_size=2)[name](), plain)


@pytest.mark.parametrize("name", ["la", "agi", "deeplift", "eg"])
@pytest.mark.parametrize("group_size", [0, -2, 1.5])
def test_bad_group_size_is_a_saliency_error(name, group_size):
    with pytest.raises(SaliencyError, match="group_size"):
        small_calls(make_images(4), published=True, group_size=group_size)[name]()
