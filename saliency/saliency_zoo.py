"""The method registry: name -> function in saliency.core, its defaults, the model it is given
and the output it explains (SPEC "Which output each method explains").

Every entry is called the same way through `attribute`, which takes the logit model and hands
each method the model it expects (probability = logit model followed by Softmax).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass

import torch

from utils import UserError, probability_model


# keyword arguments that steer how a method runs, not what it computes
RUNTIME_ARGUMENTS = {"target", "seed", "indices", "reference_images", "classes", "predicted", "max_rows"}


@dataclass(frozen=True)
class Method:
    name: str
    model: str  # "logit" or "probability": what the function is given
    explains: str
    reference_batch: int = 4  # images per call in the published code (SPEC)
    rows_per_unit: int = 1  # model rows per unit of max_rows (DeepLIFT passes image and baseline)
    # --amp computes the maps in bf16: only where that moved both AUCs by <= 0.005 on the offline
    # sample (docs/PERFORMANCE.md "Opt-in speed modes"); elsewhere the maps stay fp32
    amp_maps: bool = False

    @property
    def module(self):
        return f"saliency.core.{self.name}"

    @property
    def built(self):
        return importlib.util.find_spec(self.module) is not None

    @property
    def defaults(self) -> dict:
        """The protocol parameters and their defaults, read from the function's signature."""
        params = inspect.signature(self.function()).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name not in RUNTIME_ARGUMENTS}

    def takes(self, argument: str) -> bool:
        return argument in inspect.signature(self.function()).parameters

    def function(self):
        if not self.built:
            raise UserError(f"method {self.name!r} is registered but not built yet (see the baselines issue); built: {', '.join(built_methods())}")
        return getattr(importlib.import_module(self.module), self.name)


ZOO = {m.name: m for m in [
    Method("la", "logit", "sum over S explorations of -d softmax_c/dx * (x_t+1 - x), c = argmax", 64),
    Method("agi", "logit", "-d softmax_c/dx * step along sign(d softmax_l/dx) for 20 fixed classes l", 64),
    Method("attexplore", "logit", "mfaba path with frequency-domain gradient ensembles of CE(softmax(logits), target)", 4),
    Method("big", "probability", "IG of p_target from the closest FGSM boundary point", 1),
    Method("deeplift", "probability", "captum DeepLift of p_target, zero baseline", 4, rows_per_unit=2),
    Method("eg", "probability", "(x - ref) * d p_target/dx at ref + alpha (x - ref), ref from the evaluation set", 4),
    Method("fast_ig", "probability", "x * d CE(p, target)/dx (log-softmax of probabilities)", 1, amp_maps=True),
    Method("guided_ig", "probability", "Guided IG of softmax(p)[target], zero baseline", 1),
    Method("ig", "probability", "Integrated Gradients of p_target, zero baseline", 4, amp_maps=True),
    Method("mfaba", "logit", "-sum_t (x_t+1 - x_t) * d softmax_target/dx along sign steps that lower it", 64),
    Method("sg", "probability", "mean of d p_target/dx at x + N(0, 0.15^2)", 4),
    Method("sm", "probability", "|d p_target/dx|", 64),
]}

PAPER_ORDER = ["la", "agi", "attexplore", "big", "deeplift", "eg", "fast_ig", "guided_ig", "ig", "mfaba", "sg", "sm"]


def built_methods():
    return [name for name in PAPER_ORDER if ZOO[name].built]


def get_method(name) -> Method:
    if name not in ZOO:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(PAPER_ORDER)}")
    return ZOO[name]


def attribute(name, logit_model, images, labels, *, seed=0, indices=None, reference_images=None, max_rows=None,
              predicted=None, **params):
    """Maps [N,...] float32 for `images` from method `name` with its defaults overridden by params.

    labels: ground-truth targets (ignored by LA, which explains its own argmax). indices: the
    images' positions in the evaluation set, for per-image seeding. reference_images: the
    evaluation set, for methods that draw references from it (eg). max_rows: rows per model call
    inside the method (memory and speed only; None keeps the method's default). predicted: the
    class each image's prediction-explaining method (la, agi) explains; None: the model's argmax.
    """
    method = get_method(name)
    fn = method.function()
    unknown = set(params) - set(method.defaults)
    if unknown:
        raise UserError(f"method {name!r} has no parameter(s) {', '.join(sorted(unknown))}; it takes {', '.join(method.defaults) or 'none'}")
    kwargs = {**method.defaults, **params}
    accepted = inspect.signature(fn).parameters
    optional = {"target": labels, "seed": seed, "indices": indices, "reference_images": reference_images}
    for key, value in (("max_rows", max_rows), ("predicted", predicted)):
        if value is not None:
            optional[key] = value
    kwargs.update({k: v for k, v in optional.items() if k in accepted})
    model = probability_model(logit_model) if method.model == "probability" else logit_model
    maps = fn(model, images, **kwargs)
    if not torch.isfinite(maps).all():
        raise UserError(f"method {name!r} produced NaN or infinite values; check the model and the images")
    return maps.float()
