"""GPU and CPU maps agree for every method (runs only where CUDA is present).

Per-image Pearson r >= 0.999. Sign-driven methods (la, agi, mfaba, big, attexplore) may flip a
few near-zero gradients between devices, so there is no bitwise claim.
"""
import numpy as np
import pytest
import torch

from conftest import SMALL_SETTINGS, make_images, make_tiny_cnn
from saliency import saliency_zoo
from saliency.metric import InsertionDeletion

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SMALL = SMALL_SETTINGS


def pearson(a, b):
    return float(np.corrcoef(a.flatten(), b.flatten())[0, 1])


@pytest.fixture(scope="module")
def cuda_setup():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return make_tiny_cnn(num_classes=1000), make_images(3, size=32, seed=2), torch.tensor([5, 600, 999])


@pytest.mark.parametrize("name", saliency_zoo.PAPER_ORDER)
def test_gpu_maps_match_cpu_maps(cuda_setup, name):
    model, images, labels = cuda_setup
    params = SMALL.get(name, {})
    cpu = saliency_zoo.attribute(name, model, images, labels, reference_images=images, **params)
    gpu_model = make_tiny_cnn(num_classes=1000).cuda()
    gpu = saliency_zoo.attribute(name, gpu_model, images.cuda(), labels.cuda(), reference_images=images.cuda(), **params)
    assert gpu.device.type == "cuda"
    for a, b in zip(cpu.numpy(), gpu.cpu().numpy()):
        assert pearson(a, b) >= 0.999


def test_gpu_metric_matches_cpu(cuda_setup):
    model, images, _ = cuda_setup
    maps = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
    cpu = InsertionDeletion(model).curves(images, maps)
    gpu_model = make_tiny_cnn(num_classes=1000).cuda()
    gpu = InsertionDeletion(gpu_model).curves(images.cuda(), maps.cuda())
    for game in ("ins", "del"):
        torch.testing.assert_close(gpu[game], cpu[game], rtol=1e-4, atol=1e-5)


def test_offline_model_on_gpu_agrees(lite0):
    images = make_images(2, size=64)
    labels = torch.tensor([1, 2])
    cpu = saliency_zoo.attribute("ig", lite0, images, labels, n_steps=8)
    gpu = saliency_zoo.attribute("ig", lite0.cuda(), images.cuda(), labels.cuda(), n_steps=8)
    lite0.cpu()
    for a, b in zip(cpu.numpy(), gpu.cpu().numpy()):
        assert pearson(a, b) >= 0.999


@pytest.mark.parametrize("grad", [False, True])
def test_memory_budget_rows_fit(grad):
    """The measured rows per call run, and stay within the budget of free memory."""
    from saliency.core.common import output_grads, softmax_of
    from labench.compute.memory import MEMORY_BUDGET, auto_rows

    model = make_tiny_cnn(num_classes=1000).cuda()
    shape = (3, 64, 64)
    rows = auto_rows(model, shape, "cuda", grad=grad)
    assert rows >= 1 and rows & (rows - 1) == 0
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    x = torch.rand(rows, *shape, device="cuda")
    if grad:
        output_grads(softmax_of(model), x, torch.zeros(rows, dtype=torch.long, device="cuda"))
    else:
        with torch.inference_mode():
            model(x)
    assert torch.cuda.max_memory_allocated() - before <= MEMORY_BUDGET * free


def test_random_weights_leave_the_cuda_generator_alone():
    """load_model seeds only the CPU generator (inside torch.random.fork_rng) and builds on the CPU:
    the CUDA generator's state is the same before and after, and the network the same on the GPU."""
    from labench.nets.models import load_model

    torch.cuda.manual_seed(123)
    before = torch.cuda.get_rng_state()
    on_gpu = load_model("resnet18", weights="random", device="cuda", seed=2)
    assert torch.equal(torch.cuda.get_rng_state(), before)
    on_cpu = load_model("resnet18", weights="random", seed=2)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(on_gpu.state_dict().values(), on_cpu.state_dict().values()))
