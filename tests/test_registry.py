"""The registry: the published defaults are the defaults, each entry declares exactly its function's
keyword arguments and truthful capabilities, every call is range-checked, every method is
batch-invariant, and the library knows no model."""
import ast
import inspect

import pytest
import torch

from conftest import ROOT, SMALL_SETTINGS, make_images, make_tiny_cnn
from labench.nets.models import DEFAULT_MODEL, PAPER_MODELS, published_batch
from saliency import saliency_zoo
from saliency import SaliencyError
from saliency.core.params import COUNT, NonEmptyList, Param, Range, protocol

# docs/PROTOCOL.md "Which output each method explains": parameter defaults, the model each method is given,
# and the published images per call (docs/PROTOCOL.md "Reference batch sizes").
PROTOCOL_TABLE = {
    "la": ({"spatial_range": 20, "max_iter": 20, "sampling_times": 20}, "logit", 64),
    "agi": ({"step_size": 0.05, "max_iter": 20, "topk": 20}, "logit", 64),
    "attexplore": ({"epsilon": 16 / 255, "num_steps": 10, "num_samples": 20}, "logit", 4),
    "big": ({"epsilons": (36, 64, 76.5, 127.5, 178.5, 229.5, 280.5), "num_steps": 50, "alpha": 0.001,
             "gradient_steps": 50}, "probability", 1),
    "deeplift": ({}, "probability", 4),
    "eg": ({}, "probability", 4),
    "fast_ig": ({}, "probability", 1),
    "guided_ig": ({"n_steps": 15, "fraction": 0.25, "max_dist": 0.02}, "probability", 1),
    "ig": ({"n_steps": 50}, "probability", 4),
    "mfaba": ({"epsilon": 0.3, "alpha": 0.001, "max_iter": 50}, "logit", 64),
    "sg": ({"n_samples": 50, "stdev": 0.15}, "probability", 4),
    "sm": ({}, "probability", 64),
}

SMALL = SMALL_SETTINGS


def test_all_twelve_are_registered_and_built():
    assert sorted(saliency_zoo.ZOO) == sorted(PROTOCOL_TABLE)
    assert saliency_zoo.built_methods() == saliency_zoo.PAPER_ORDER


def test_runtime_properties():
    """bf16 maps under --amp only where measured within 0.005 AUC (docs/PERFORMANCE.md), and
    DeepLIFT's two model rows (image and baseline) per unit of max_rows."""
    assert {n for n, m in saliency_zoo.ZOO.items() if m.amp_maps} == {"ig", "fast_ig"}
    assert {n: m.rows_per_unit for n, m in saliency_zoo.ZOO.items() if m.rows_per_unit != 1} == {"deeplift": 2}
    assert saliency_zoo.get_method("la").takes("predicted") and not saliency_zoo.get_method("sm").takes("predicted")


@pytest.mark.parametrize("name", sorted(PROTOCOL_TABLE))
def test_published_defaults_model_and_batch(name):
    defaults, model, batch = PROTOCOL_TABLE[name]
    method = saliency_zoo.get_method(name)
    assert method.defaults == defaults
    assert method.model == model
    assert method.reference_batch == batch


def test_unknown_method_and_parameter_are_the_librarys_errors():
    with pytest.raises(SaliencyError, match="unknown method"):
        saliency_zoo.get_method("gradcam")
    with pytest.raises(SaliencyError, match="no parameter"):
        saliency_zoo.attribute("sm", make_tiny_cnn(), make_images(1), torch.tensor([0]), n_steps=3)


@pytest.mark.parametrize("name", saliency_zoo.PAPER_ORDER)
def test_maps_do_not_depend_on_batch_size_or_order(name):
    model = make_tiny_cnn(num_classes=1000)
    images = make_images(4, size=16, seed=1)
    labels = torch.tensor([3, 998, 41, 500])
    params = SMALL.get(name, {})

    def run(order, **kw):
        return saliency_zoo.attribute(name, model, images[order], labels[order], seed=5, indices=order,
                                      reference_images=images, **params, **kw)

    together = run(torch.arange(4))
    assert together.shape == images.shape and together.dtype == torch.float32
    assert together.abs().sum() > 0
    order = torch.tensor([2, 0, 3, 1])
    shuffled = run(order)
    split = torch.cat([run(torch.tensor([0])), run(torch.tensor([1, 2])), run(torch.tensor([3]))])
    # Measured: bitwise or within 2e-7 of the map's scale on this CPU (row batches of different
    # sizes may round a convolution differently); sign-driven methods could amplify that, so the
    # bound is 1e-5 of the scale.
    scale = float(together.abs().max())
    torch.testing.assert_close(shuffled, together[order], rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(split, together, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name", saliency_zoo.PAPER_ORDER)
def test_capabilities_are_what_the_maps_depend_on(name):
    """The seed changes the maps of seeded methods only, the labels those of methods that explain
    them (not la and agi, which explain their prediction), the reference images eg's only."""
    method = saliency_zoo.get_method(name)
    model = make_tiny_cnn(num_classes=1000)
    images, labels = make_images(2, size=16), torch.tensor([1, 2])

    def run(**changed):
        given = {"seed": 0, "labels": labels, "reference_images": images, **changed}
        return saliency_zoo.attribute(name, model, images, given.pop("labels"), **given, **SMALL.get(name, {}))

    plain = run()
    assert torch.equal(plain, run(seed=1)) != method.seeded
    assert torch.equal(plain, run(labels=torch.tensor([7, 9]))) == method.explains_prediction
    assert torch.equal(plain, run(reference_images=make_images(3, size=16, seed=8))) != method.takes_reference_images


# ---------------------------------------------------------------- declared parameters and capabilities


def keyword_only(function):
    return [p for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]


@pytest.mark.parametrize("name", saliency_zoo.PAPER_ORDER)
def test_an_entry_declares_exactly_its_functions_keywords(name):
    """The declared parameters and the capabilities' arguments are the function's keyword-only
    arguments, each once: a new keyword on a function, undeclared, fails here. The declared
    parameters are the ones without a default in the code (their defaults are declared once);
    the signature users see shows the declared defaults."""
    method = saliency_zoo.get_method(name)
    declared = [p.name for p in method.params]
    code = keyword_only(method.function.__wrapped__)
    assert sorted(p.name for p in code) == sorted(declared + list(method.runtime_arguments))
    assert [p.name for p in code if p.default is p.empty] == declared
    assert {p.name: p.default for p in keyword_only(method.function) if p.name in declared} == method.defaults
    positional = list(inspect.signature(method.function).parameters)[:3]
    assert positional[:2] == ["model", "images"] and (positional[2] == "target" or method.explains_prediction)


def test_a_declaration_must_match_the_functions_keywords():
    def undeclared(model, images, *, steps, max_rows=None):
        return images

    def defaulted(model, images, *, steps=3, max_rows=None):
        return images

    with pytest.raises(TypeError, match="declared parameters"):
        protocol("X")(undeclared)
    with pytest.raises(TypeError, match="declared parameters"):
        protocol("X", Param("steps", 3, COUNT))(defaulted)
    declared = protocol("X", Param("steps", 3, COUNT))(undeclared)
    assert declared.protocol.defaults == {"steps": 3} and str(inspect.signature(declared)).startswith(
        "(model, images, *, steps=3, max_rows=None)")


def invalid_values(valid):
    """Values just outside a declared range (and a fraction for an integer one)."""
    if isinstance(valid, NonEmptyList):
        return [(), [0.0], "36"]
    out = [valid.low if valid.open_low else valid.low - 1] if valid.low is not None else []
    out += [valid.high + 1] if valid.high is not None else []
    return out + ([valid.low + 1.5] if valid.integer else []) + ["1", True, float("nan")]


class NoModelWork(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("the model ran before the parameters were checked")


CASES = [(name, param.name, bad) for name in saliency_zoo.PAPER_ORDER for param in saliency_zoo.ZOO[name].params
         for bad in invalid_values(param.valid)]


@pytest.mark.parametrize("name,param,bad", CASES)
def test_attribute_and_a_direct_call_check_the_declared_range(name, param, bad):
    """Both go through the declaration: the same one-line SaliencyError, before any model work."""
    method = saliency_zoo.get_method(name)
    images, labels = make_images(2, size=8), torch.tensor([0, 1])
    with pytest.raises(SaliencyError) as through_registry:
        saliency_zoo.attribute(name, NoModelWork(), images, labels, **{param: bad})
    direct_args = (images,) if method.explains_prediction else (images, labels)
    with pytest.raises(SaliencyError) as direct:
        method.function(NoModelWork(), *direct_args, **{param: bad})
    assert str(direct.value) == str(through_registry.value)
    assert str(direct.value).startswith(f"{method.display}'s {param} must be ") and repr(bad) in str(direct.value)


def test_the_range_messages():
    from saliency.core.big import boundary_points
    from saliency.core.la import la
    with pytest.raises(SaliencyError, match=r"^LA's max_iter must be an integer >= 1, got 0$"):
        la(NoModelWork(), make_images(1), max_iter=0)
    with pytest.raises(SaliencyError, match=r"^BIG's epsilons must be a non-empty list of numbers > 0, got \(\)$"):
        boundary_points(NoModelWork(), make_images(1), torch.tensor([0]), epsilons=())
    assert Range(1, 1000, integer=True).check(1001) == "an integer >= 1 and <= 1000"
    assert Range().check("x") == "a number" and COUNT.check(2.0) is None


def test_published_batch_is_a_model_rule_outside_the_library():
    """docs/PROTOCOL.md "As published": maxvit_t ran half the reference batch, except eg."""
    assert {m: published_batch(m, "resnet50") for m in ["la", "agi", "deeplift", "eg", "big"]} == {
        "la": 64, "agi": 64, "deeplift": 4, "eg": 4, "big": 1}
    assert {m: published_batch(m, "maxvit_t") for m in ["la", "agi", "deeplift", "eg", "big"]} == {
        "la": 32, "agi": 32, "deeplift": 2, "eg": 4, "big": 1}


def test_the_library_names_no_model():
    """Model-specific rules live in labench: no string in saliency/ is a model's name."""
    names = {DEFAULT_MODEL, *PAPER_MODELS}
    found = [(path.name, node.value) for path in (ROOT / "saliency").rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in names]
    assert found == []
