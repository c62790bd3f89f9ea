"""Models (labench.nets.models.load_model), class names, and the data sources behind generate_pt.py."""
import json
import urllib.error

import pytest
import torch
import torch.nn as nn
from PIL import Image

from conftest import PUBLISHED_SET, ROOT, make_images
from labench.compute import data
from labench.compute.data import build_dataset
from labench.compute.setup import load_inputs
from labench.errors import UserError
from labench.nets import models
from labench.nets.models import load_model
from labench.spec.run import Run
from saliency import probability_model



def test_offline_model_loads_strictly_with_its_own_normalisation(lite0):
    normalize, net = lite0[0], lite0[1]
    assert torch.allclose(normalize.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))
    assert torch.allclose(normalize.std.flatten(), torch.tensor([0.5, 0.5, 0.5]))
    assert type(net.conv_stem).__name__ == "Conv2dSame"  # TF "SAME" padding kept
    assert not lite0.training and not any(p.requires_grad for p in lite0.parameters())
    # every tensor of the packaged file landed in the network (strict load) with its values
    state = torch.load(models.efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(net.classifier.weight, state["_fc.weight"])
    assert torch.equal(net.blocks[1][0].conv_pw.weight, state["_blocks.1._expand_conv.weight"])
    assert torch.equal(net.blocks[0][0].conv_dw.weight, state["_blocks.0._depthwise_conv.weight"])


@pytest.mark.parametrize("name, mean", [("resnet50", models.IMAGENET_MEAN), ("vgg16", models.IMAGENET_MEAN),
                                        ("resnet18", models.IMAGENET_MEAN)])
def test_random_weights_build_the_architecture(name, mean):
    model = load_model(name, weights="random")
    assert isinstance(model[0], models.Normalize)
    assert torch.allclose(model[0].mean.flatten(), torch.tensor(mean))
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_paper_models_use_v1_weights():
    import torchvision

    for name in ["inception_v3", "resnet50", "vgg16", "maxvit_t"]:
        assert name in models.MODELS
    weights = torchvision.models.get_model_weights("resnet50")
    assert weights["IMAGENET1K_V1"].url.endswith("resnet50-0676ba61.pth")


def test_failed_download_names_the_file_and_the_offline_model(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UserError) as err:
        load_model("resnet50")
    message = str(err.value)
    assert "\n" not in message
    assert "resnet50-0676ba61.pth" in message and "checkpoints" in message and "efficientnet_lite0" in message


def test_unknown_model_and_weights():
    with pytest.raises(UserError, match="unknown model"):
        load_model("resnet_nope")
    with pytest.raises(UserError, match="unknown weights"):
        load_model("resnet50", weights="IMAGENET9K")


def test_class_index_is_rebuilt_from_installed_packages():
    committed = json.loads((ROOT / "imagenet_class_index.json").read_text())
    assert committed == data.build_class_index()
    assert data.class_names()[281] == "tabby"


@pytest.mark.skipif(PUBLISHED_SET is None, reason="LABENCH_PUBLISHED_SET names no local copy of the published set")
def test_class_index_agrees_with_the_reference_copy():
    ours = json.loads((ROOT / "imagenet_class_index.json").read_text())
    reference = json.loads((PUBLISHED_SET / "imagenet_class_index.json").read_text())
    assert [ours[str(i)][0] for i in range(1000)] == [reference[str(i)][0] for i in range(1000)]
    differing = [i for i in range(1000) if ours[str(i)][1] != reference[str(i)][1]]
    assert differing == [134, 639]  # torchvision disambiguates the two duplicated names (crane, maillot)


def make_tree(root, folders, sizes=((300, 200), (180, 260))):
    for k, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for j, size in enumerate(sizes):
            Image.new("RGB", size, (40 * k, 60 * j, 90)).save(root / folder / f"img{j}.JPEG")


def test_imagefolder_is_sampled_reproducibly_with_wnid_labels(tmp_path):
    make_tree(tmp_path / "val", ["n01440764", "n01443537", "n02123045"])
    runs = []
    for name in ["a", "b"]:
        build_dataset(tmp_path / name / "pngs", tmp_path / name / "data", imagefolder=tmp_path / "val", n=4, seed=5)
        runs.append((torch.load(tmp_path / name / "data" / "img_batch.pt"), torch.load(tmp_path / name / "data" / "label_batch.pt")))
    (images, labels), (images2, labels2) = runs
    assert images.shape == (4, 3, 224, 224) and torch.equal(images, images2) and torch.equal(labels, labels2)
    assert set(labels.tolist()) <= {0, 1, 281}
    # each image is the solid colour of its class folder, resized and cropped
    colours = {0: 0, 1: 40, 281: 80}
    for image, label in zip(images, labels):
        assert abs(float(image[0].mean()) * 255 - colours[int(label)]) < 4  # JPEG rounding


def test_imagefolder_with_plain_folder_names_uses_sorted_positions(tmp_path):
    make_tree(tmp_path / "tree", ["dogs", "cats"], sizes=((240, 240),))
    build_dataset(tmp_path / "p", tmp_path / "d", imagefolder=tmp_path / "tree", n=10)
    labels = torch.load(tmp_path / "d" / "label_batch.pt")
    assert sorted(labels.tolist()) == [0, 1]


def test_png_folder_with_labels_in_the_parent(tmp_path):
    pngs = tmp_path / "visualized_imgs"
    pngs.mkdir()
    for i in range(3):
        Image.new("RGB", (224, 224), (10 * i, 0, 255)).save(pngs / f"{i}.png")
    torch.save(torch.tensor([7, 8, 9]), tmp_path / "label_batch.pt")
    build_dataset(pngs, tmp_path / "data")
    images = torch.load(tmp_path / "data" / "img_batch.pt")
    assert torch.load(tmp_path / "data" / "label_batch.pt").tolist() == [7, 8, 9]
    assert images[2, 0].mean().item() == pytest.approx(20 / 255) and images[2, 2].max().item() == 1.0


def test_normalize_layer():
    layer = models.Normalize((0.5, 0.25, 0.0), (0.5, 0.5, 2.0))
    x = torch.ones(1, 3, 2, 2)
    assert torch.allclose(layer(x)[0, :, 0, 0], torch.tensor([1.0, 1.5, 0.5]))
    assert isinstance(probability_model(nn.Identity())[1], nn.Softmax)


def nan_after_two(folder):
    """A cache of 4 images whose last two hold NaN (a corrupt tail)."""
    folder.mkdir()
    images = make_images(4, size=16)
    images[2:] = float("nan")
    torch.save(images, folder / "img_batch.pt")
    torch.save(torch.tensor([1, 2, 3, 4]), folder / "label_batch.pt")
    return images


def test_a_run_reads_and_checks_only_the_images_it_uses(tmp_path):
    images = nan_after_two(tmp_path / "data")
    first, labels = data.load_dataset(tmp_path / "data", limit=2)
    assert torch.equal(first, images[:2]) and labels.tolist() == [1, 2]
    assert first.dtype == torch.float32 and first.shape == (2, 3, 16, 16)
    with pytest.raises(UserError, match="NaN"):
        data.load_dataset(tmp_path / "data")
    with pytest.raises(UserError, match="NaN"):
        data.load_dataset(tmp_path / "data", limit=3)
    run = Run(method="sm", data_dir=str(tmp_path / "data"), limit=2, weights="random")
    loaded, loaded_labels, _, _ = load_inputs(run)
    assert torch.equal(loaded, images[:2]) and loaded_labels.tolist() == [1, 2]


def test_a_cache_in_the_old_torch_format_still_loads(tmp_path):
    (tmp_path / "old").mkdir()
    images = make_images(3, size=16)
    torch.save(images, tmp_path / "old" / "img_batch.pt", _use_new_zipfile_serialization=False)
    torch.save(torch.tensor([5, 6, 7]), tmp_path / "old" / "label_batch.pt", _use_new_zipfile_serialization=False)
    loaded, labels = data.load_dataset(tmp_path / "old", limit=2)
    assert torch.equal(loaded, images[:2]) and labels.tolist() == [5, 6]


def test_images_mapped_from_the_cache_can_be_changed_without_touching_it(tmp_path):
    (tmp_path / "data").mkdir()
    torch.save(make_images(2, size=8), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), tmp_path / "data" / "label_batch.pt")
    before = (tmp_path / "data" / "img_batch.pt").read_bytes()
    images, _ = data.load_dataset(tmp_path / "data")
    images.zero_()
    assert (tmp_path / "data" / "img_batch.pt").read_bytes() == before
    assert not torch.equal(data.load_dataset(tmp_path / "data")[0], images)
