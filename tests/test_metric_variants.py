"""Insertion/Deletion options (substrate, order, ties) against a naive NumPy oracle of docs/PROTOCOL.md."""
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch

from conftest import make_images, make_tiny_cnn
from saliency import probability_model
from saliency.errors import SaliencyError
from saliency.metric import InsertionDeletion, descending_rank, gaussian_kernel, perturbation_ranks, substrate_of

N_STEPS = 20  # 768 values -> 39 a step, 256 pixels -> 13 a step: both use the ceil


def oracle_kernel():
    """RISE's gkern(11, 5): a centred impulse through scipy.ndimage.gaussian_filter (sigma 5)."""
    import scipy.ndimage

    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1
    return scipy.ndimage.gaussian_filter(impulse, 5)


def oracle_substrate(img, substrate):
    """[C, H, W] float64 substrate of one [C, H, W] image."""
    if substrate == "black":
        return np.zeros(img.shape)
    if substrate == "mean":
        return np.broadcast_to(img.mean(axis=(1, 2), keepdims=True, dtype=np.float64), img.shape)
    return np.stack([scipy.ndimage.convolve(c.astype(np.float64), oracle_kernel(), mode="constant") for c in img])


def oracle_order(sal, order, ties):
    """Unit indices (values or pixels), first moved first."""
    flat = sal.sum(axis=0).ravel() if order == "pixel" else sal.ravel()
    return np.flip(np.argsort(flat, kind="stable") if ties == "stable" else np.argsort(flat))


def naive_curves(model, images, maps, substrate="black", order="channel", ties="stable", n_steps=N_STEPS):
    """Per image, per step, a NumPy copy of the image with the first k*step units from the substrate."""
    curves = {"ins": [], "del": []}
    for img, sal in zip(images.numpy(), maps.numpy()):
        base = oracle_substrate(img, substrate)
        units = oracle_order(sal, order, ties)
        step = math.ceil(len(units) / n_steps)
        with torch.no_grad():
            c = int(model(torch.from_numpy(img)[None]).argmax())
        ins, dele = [], []
        for k in range(n_steps + 1):
            moved = np.zeros(len(units), dtype=bool)
            moved[units[: k * step]] = True
            if order == "pixel":
                moved = np.broadcast_to(moved.reshape(img.shape[1:]), img.shape)  # all channels of a pixel
            moved = moved.reshape(img.shape)
            inserted = np.where(moved, img, base)
            deleted = np.where(moved, base, img)
            batch = torch.from_numpy(np.stack([inserted, deleted]).astype(np.float32))
            with torch.no_grad():
                p = model(batch)[:, c].numpy()
            ins.append(p[0])
            dele.append(p[1])
        curves["ins"].append(ins)
        curves["del"].append(dele)
    return {g: np.array(v).T for g, v in curves.items()}


def tied_maps(shape, seed):
    """Few distinct values, so the tie rule decides most of the order."""
    return torch.randint(0, 4, shape, generator=torch.Generator().manual_seed(seed)).float()


@pytest.fixture(scope="module")
def model():
    return probability_model(make_tiny_cnn())


@pytest.mark.parametrize("substrate", ["black", "blur", "mean"])
@pytest.mark.parametrize("order", ["channel", "pixel"])
@pytest.mark.parametrize("ties", ["stable", "numpy"])
def test_curves_match_naive_oracle(model, substrate, order, ties):
    images = make_images(2, size=16)
    maps = tied_maps(images.shape, 2)
    metric = InsertionDeletion(model, n_steps=N_STEPS, batch_size=9, substrate=substrate, order=order, ties=ties, softmax=False)
    curves = metric.curves(images, maps)
    expected = naive_curves(model, images, maps, substrate, order, ties)
    for game in ("ins", "del"):
        assert curves[game].shape == (N_STEPS + 1, 2)
        np.testing.assert_allclose(curves[game].numpy(), expected[game], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("order", ["channel", "pixel"])
def test_tie_rules_differ_and_each_follows_its_numpy_order(model, order):
    images = make_images(2, size=16)
    maps = tied_maps(images.shape, 3)
    stable = perturbation_ranks(maps, order, "stable")
    published = perturbation_ranks(maps, order, "numpy")
    for m, r_stable, r_published in zip(maps.numpy(), stable.numpy(), published.numpy()):
        np.testing.assert_array_equal(np.argsort(r_stable), oracle_order(m, order, "stable"))
        np.testing.assert_array_equal(np.argsort(r_published), oracle_order(m, order, "numpy"))
    assert not torch.equal(stable, published)
    curves = {t: InsertionDeletion(model, N_STEPS, order=order, ties=t, softmax=False).curves(images, maps)
              for t in ("stable", "numpy")}
    assert not torch.allclose(curves["stable"]["del"], curves["numpy"]["del"])


def test_default_is_the_original_protocol_bitwise(model):
    """Defaults, explicit defaults and the original vectorised expression (x * keep over the
    stable channel ranks, one curve per forward) give the same bits."""
    images = make_images(2, size=16)
    maps = torch.randn(images.shape, generator=torch.Generator().manual_seed(4))
    default = InsertionDeletion(model, N_STEPS, batch_size=N_STEPS + 1, softmax=False).curves(images, maps)
    explicit = InsertionDeletion(model, N_STEPS, batch_size=N_STEPS + 1, substrate="black", order="channel",
                                 ties="stable", softmax=False).curves(images, maps)
    size, step = images[0].numel(), math.ceil(images[0].numel() / N_STEPS)
    rank = descending_rank(maps)
    moved = rank[:, None, :] < torch.arange(N_STEPS + 1)[None, :, None] * step  # [N, steps, size]
    with torch.no_grad():
        classes = model(images).argmax(1)
        for game, keep in (("ins", moved), ("del", ~moved)):
            rows = [(images[i].reshape(1, size) * keep[i]).view(-1, *images.shape[1:]) for i in range(len(images))]
            original = torch.stack([model(r)[:, c] for r, c in zip(rows, classes)], dim=1)
            assert torch.equal(default[game], explicit[game])
            assert torch.equal(default[game], original)


def test_blur_kernel_and_substrate_against_scipy_and_explicit_convolution():
    kernel = gaussian_kernel().double().numpy()
    assert kernel.shape == (11, 11) and kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, oracle_kernel(), rtol=1e-6)
    window = scipy.signal.windows.gaussian(11, std=5)  # sampled values: flatter after RISE's reflection
    assert kernel.max() < (np.outer(window, window) / np.outer(window, window).sum()).max() - 0.002
    images = make_images(2, size=16)
    blurred = substrate_of(images, "blur").numpy()
    padded = np.pad(images.numpy().astype(np.float64), ((0, 0), (0, 0), (5, 5), (5, 5)))  # zero padding
    windows = np.lib.stride_tricks.sliding_window_view(padded, (11, 11), axis=(2, 3))
    explicit = np.einsum("nchwij,ij->nchw", windows, oracle_kernel())
    np.testing.assert_allclose(blurred, explicit, rtol=1e-5, atol=1e-6)
    for img, out in zip(images.numpy(), blurred):
        np.testing.assert_allclose(out, oracle_substrate(img, "blur"), rtol=1e-5, atol=1e-6)
    assert blurred[:, :, 0, 0].mean() < blurred[:, :, 8, 8].mean()  # zeros enter at the border


def test_mean_substrate_is_each_channels_mean(model):
    images = make_images(2, size=16)
    mean = substrate_of(images, "mean")
    np.testing.assert_allclose(mean.numpy(), images.mean(dim=(2, 3), keepdim=True).expand_as(images).numpy())
    assert not torch.allclose(mean[0, 0], mean[0, 1]) and not torch.allclose(mean[0, 0], mean[1, 0])
    curves = InsertionDeletion(model, N_STEPS, substrate="mean", softmax=False).curves(images, torch.rand(images.shape))
    with torch.no_grad():
        p = model(mean.contiguous()).gather(1, model(images).argmax(1, keepdim=True)).squeeze(1)
    assert torch.allclose(curves["del"][-1], p) and torch.allclose(curves["ins"][0], p)


class Recorder(torch.nn.Module):
    """The model, keeping every input it was given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.model(x)


def test_pixel_order_moves_whole_pixels_ranked_by_channel_sums(model):
    images = make_images(1, size=8) + 0.1  # no value equals the black substrate
    maps = torch.zeros(images.shape)
    maps[0, :, 0, 1] = 4.0  # sum 12: first pixel
    maps[0, 0, 0, 0] = 10.0  # the largest value, but sum 10: second pixel
    recorder = Recorder(model)
    n_steps = 20  # 64 pixels -> 4 a step
    InsertionDeletion(recorder, n_steps, batch_size=n_steps + 1, order="pixel", softmax=False).curves(images, maps)
    ins, dele = recorder.inputs[-2], recorder.inputs[-1]  # one batch per game, after the class forward
    for k, (inserted, deleted) in enumerate(zip(ins, dele)):
        assert torch.equal(inserted == 0, (deleted != 0))
        zero_channels = (deleted == 0).sum(0)
        assert set(zero_channels.unique().tolist()) <= {0, 3}  # all channels of a pixel or none
        assert int((zero_channels == 3).sum()) == min(4 * k, 64)
    first_deleted = dele[1] == 0
    assert first_deleted[:, 0, 1].all() and first_deleted[:, 0, 0].all()
    single = Recorder(model)
    InsertionDeletion(single, 64, batch_size=65, order="pixel", softmax=False).curves(images, maps)
    one = single.inputs[-1][1] == 0  # deletion after one pixel: the one with the larger sum
    assert one[:, 0, 1].all() and not one[:, 0, 0].any() and int(one.sum()) == 3


def test_bad_options_are_refused(model):
    for kwargs, message in [({"substrate": "white"}, "substrate='white'"), ({"order": "row"}, "order='row'"),
                            ({"ties": "random"}, "ties='random'")]:
        with pytest.raises(SaliencyError, match=message):
            InsertionDeletion(model, **kwargs, softmax=False)
    with pytest.raises(SaliencyError, match="order='pixel' needs"):
        perturbation_ranks(torch.rand(2, 5), "pixel")
