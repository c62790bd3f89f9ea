"""Any classifier: timm models by name (their own mean, std and input size), a local state-dict
checkpoint for any supported architecture, and every method on a tiny ViT."""
import pytest
import torch
import torch.nn as nn

from conftest import SMALL_SETTINGS, make_images
from labench.errors import UserError
from labench.spec.identity import OutputId
from labench.nets.models import Normalize, ResizeTo, load_model, weights_tag
from saliency import PAPER_ORDER, SaliencyError, attribute


@pytest.fixture(scope="module")
def tiny_vit():
    """timm's test_vit (input 160, mean = std = 0.5) with random weights."""
    return load_model("test_vit", weights="random")


def test_timm_model_takes_its_own_normalisation_and_input_size(tiny_vit):
    normalize, resize, net = tiny_vit
    assert isinstance(normalize, Normalize) and isinstance(resize, ResizeTo)
    assert normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5] and resize.size == (160, 160)
    x = make_images(2, size=32)
    with torch.no_grad():
        expected = net((nn.functional.interpolate(x, size=(160, 160), mode="bilinear") - 0.5) / 0.5)
        assert torch.allclose(tiny_vit(x), expected, atol=1e-5)
    assert tiny_vit(x).shape == (2, 1000)


@pytest.mark.parametrize("method", PAPER_ORDER)
def test_every_method_runs_on_a_tiny_vit_or_says_why(tiny_vit, method):
    images, labels = make_images(2, size=16), torch.tensor([3, 7])
    try:
        maps = attribute(method, tiny_vit, images, labels, indices=range(2), reference_images=images,
                         **SMALL_SETTINGS.get(method, {}))
    except SaliencyError as err:
        assert "\n" not in str(err) and len(str(err)) < 400  # one line naming why
        return
    assert maps.shape == images.shape and torch.isfinite(maps).all()


def test_checkpoint_weights_load_strictly_and_name_files(tmp_path):
    source = load_model("test_resnet", weights="random", seed=1)
    path = tmp_path / "my fine-tuned.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source[-1].state_dict().items()}}, path)
    loaded = load_model("test_resnet", weights=str(path))
    x = make_images(2, size=32)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))
    assert weights_tag(str(path)) == "my_fine_tuned"
    out = OutputId.make("test_resnet", "sm", weights_tag(str(path)))
    assert out.stem == "test_resnet-my_fine_tuned_sm" and OutputId.parse(out.stem) == out


def test_bad_checkpoints_and_offline_pretrained_weights_are_one_line_errors(tmp_path, monkeypatch):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="does not fit this architecture"):
        load_model("test_resnet", weights=str(tmp_path / "other.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_model("test_resnet", weights=str(tmp_path / "junk.pt"))
    with pytest.raises(UserError, match="no such checkpoint"):
        load_model("test_resnet", weights=str(tmp_path / "missing.pt"))

    import timm

    def offline(*args, pretrained=False, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(UserError, match="could not load the pretrained weights of timm model test_vit.*--weights random"):
        load_model("test_vit")
    with pytest.raises(UserError, match="unknown model"):
        load_model("no_such_model_anywhere")
    with pytest.raises(UserError, match="cannot name files"):
        load_model("resnet/50")
