"""The library as a captum user calls it: target= or the model's prediction, the logit model given
to the metric, per-image scores, clear errors instead of silent wrong numbers."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import SMALL_SETTINGS as SMALL, make_images, make_tiny_cnn
from saliency import (InsertionDeletion, Normalize, SaliencyError, Scores, attribute, auc, normalized,
                      probability_model)
from saliency.core.eg import draw_eg_references
from saliency.core.la import la

TARGETS = torch.tensor([3, 1, 4, 1])


@pytest.fixture
def model():
    return make_tiny_cnn()


@pytest.fixture
def images():
    return make_images(4, size=16)


@pytest.mark.parametrize("name", ["sm", "ig", "sg", "deeplift", "mfaba"])
def test_target_keyword_is_the_positional_labels(name, model, images):
    params = SMALL.get(name, {})
    positional = attribute(name, model, images, TARGETS, **params)
    assert torch.equal(attribute(name, model, images, target=TARGETS, **params), positional)
    one_class = attribute(name, model, images, target=2, **params)
    assert torch.equal(one_class, attribute(name, model, images, torch.full((4,), 2), **params))


@pytest.mark.parametrize("name", ["sm", "ig"])
def test_no_target_explains_the_models_prediction(name, model, images):
    images = images.clone()  # colours the tiny CNN tells apart: its prediction differs between images
    images[:, 0] *= torch.tensor([0.0, 1.0, 0.2, 1.0]).view(4, 1, 1)
    images[:, 2] *= torch.tensor([1.0, 0.0, 0.5, 0.1]).view(4, 1, 1)
    predicted = model(images).argmax(1)
    assert len(set(predicted.tolist())) > 1  # the check below is not about one class
    assert torch.equal(attribute(name, model, images, **SMALL.get(name, {})),
                       attribute(name, model, images, predicted, **SMALL.get(name, {})))


def test_la_explains_the_target_given_by_keyword(model, images):
    params = {"max_iter": 2, "sampling_times": 2, "spatial_range": 5}
    wanted = torch.tensor([0, 9, 5, 2])
    by_keyword = attribute("la", model, images, target=wanted, **params)
    assert torch.equal(by_keyword, la(model, images, predicted=wanted, **params))
    # the positional labels are the benchmark's ground truth, which la ignores (it explains the prediction)
    assert torch.equal(attribute("la", model, images, wanted, **params), la(model, images, **params))
    assert not torch.equal(by_keyword, la(model, images, **params))


@pytest.mark.parametrize("call, message", [
    (lambda m, x: attribute("sm", m, x, TARGETS, target=TARGETS), "not both"),
    (lambda m, x: attribute("sm", m, x, target=TARGETS.float()), "integer tensor"),
    (lambda m, x: attribute("sm", m, x, target=TARGETS[:3]), "3 classes for 4 images"),
    (lambda m, x: attribute("la", m, x, target=TARGETS, predicted=TARGETS), "not both"),
])
def test_bad_targets_name_the_fix(call, message, model, images):
    with pytest.raises(SaliencyError, match=message):
        call(model, images)


def test_eg_alone_without_reference_images_is_an_error_naming_them(model, images):
    with pytest.raises(SaliencyError, match="reference_images="):
        attribute("eg", model, images[:1], TARGETS[:1])
    maps = attribute("eg", model, images[:1], TARGETS[:1], reference_images=images)
    assert maps.abs().sum() > 0


def test_a_constant_map_warns_once_naming_the_image(model, images):
    # an image that draws itself as eg's reference gets an all-zero map
    positions, _ = draw_eg_references(4, 0, [0, 1, 2, 3])
    itself = [i for i in range(4) if positions[i] == i]
    assert 0 < len(itself) < 4
    named = ", ".join(map(str, itself))
    with pytest.warns(UserWarning, match=rf"constant map for image\(s\) {named}:") as record:
        maps = attribute("eg", model, images, TARGETS, seed=0, indices=[0, 1, 2, 3], reference_images=images)
    assert len([w for w in record if "constant map" in str(w.message)]) == 1
    assert all((maps[i] == 0).all() == (i in itself) for i in range(4))
    with pytest.warns(UserWarning, match=r"image\(s\) 11:"):  # named by its index in the evaluation set
        attribute("eg", model, images[1:2], TARGETS[1:2], seed=0, indices=[11], reference_images=images[1:2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attribute("sm", model, images, TARGETS)  # no warning for ordinary maps


def test_metric_takes_the_logit_model_and_gives_per_image_scores(model, images):
    maps = torch.rand(images.shape, generator=torch.Generator().manual_seed(1))
    scores = InsertionDeletion(model, n_steps=16, batch_size=17).scores(images, maps)
    assert isinstance(scores, Scores)
    on_probabilities = InsertionDeletion(probability_model(model), 16, 17, softmax=False).curves(images, maps)
    assert torch.equal(scores.insertion_curves, on_probabilities["ins"])  # the protocol's softmax, inside
    assert torch.equal(scores.deletion_curves, on_probabilities["del"])
    np.testing.assert_array_equal(scores.insertion.numpy(), auc(on_probabilities["ins"]))
    np.testing.assert_array_equal(scores.deletion.numpy(), auc(on_probabilities["del"]))
    assert scores.insertion.shape == (4,) and scores.insertion.dtype == torch.float64
    assert ((scores.insertion >= 0) & (scores.insertion <= 1)).all() and ((scores.deletion >= 0) & (scores.deletion <= 1)).all()
    # an oracle of one point: the insertion curve ends on the clean image's top probability
    clean = torch.softmax(model(images), 1).max(1).values
    torch.testing.assert_close(scores.insertion_curves[-1], clean)


def test_metric_refuses_a_model_that_is_not_what_it_expects(model, images):
    maps = torch.rand(images.shape)
    with pytest.raises(SaliencyError, match="already returns probabilities"):
        InsertionDeletion(probability_model(model), n_steps=4).scores(images, maps)
    with pytest.raises(SaliencyError, match="softmax=True"):
        InsertionDeletion(model, n_steps=4, softmax=False).scores(images, maps)  # logits read as probabilities
    with pytest.raises(SaliencyError, match="softmax=True"):  # also when the classes are given
        InsertionDeletion(model, n_steps=4, softmax=False).scores(images, maps, classes=TARGETS)


def test_normalize_and_a_wrapped_classifier_come_from_saliency():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    wrapped = normalized(net, mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 2.0))
    x = make_images(2, size=4)
    expected = net((x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.5, 2.0]).view(1, 3, 1, 1))
    torch.testing.assert_close(wrapped(x), expected)
    assert isinstance(wrapped[0], Normalize) and wrapped[1] is net and not wrapped.training
    from labench.nets import models
    assert models.Normalize is Normalize  # one class: the benchmark's models start with it
