"""The method registry: name -> function in saliency.core, its defaults, the model it is given,
the output it explains (SPEC "Which output each method explains") and the parameters that name
its output files.

Every entry is called the same way through `attribute`, which takes the logit model and hands
each method the model it expects (probability = logit model followed by Softmax). Adding a
method is one file in saliency/core and one entry here.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from .core.agi import agi
from .core.attexplore import attexplore
from .core.big import big
from .core.common import probability_model
from .core.deeplift import deeplift
from .core.eg import eg
from .core.fast_ig import fast_ig
from .core.guided_ig import guided_ig
from .core.ig import ig
from .core.la import la
from .core.mfaba import mfaba
from .core.sg import sg
from .core.sm import sm
from .errors import SaliencyError

# keyword arguments that steer how a method runs, or which computation (published: the published
# code's coupled groups), not protocol parameters
RUNTIME_ARGUMENTS = {"target", "seed", "indices", "reference_images", "classes", "predicted", "max_rows",
                     "published", "group_size"}


@dataclass(frozen=True)
class Range:
    """The valid values of one numeric parameter: low < v (open) or low <= v, v <= high; integer."""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    integer: bool = False

    def check(self, value) -> str | None:
        """None if `value` is valid, else what it must be."""
        kind = "an integer" if self.integer else "a number"
        bounds = [f"> {self.low:g}" if self.open_low else f">= {self.low:g}"] if self.low is not None else []
        bounds += [f"<= {self.high:g}"] if self.high is not None else []
        wanted = f"{kind} {' and '.join(bounds)}".strip()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return wanted
        if self.integer and int(value) != value:
            return wanted
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and value > self.high
        return wanted if too_low or too_high else None


POSITIVE, COUNT, STEPS = Range(0, open_low=True), Range(1, integer=True), Range(2, integer=True)
FRACTION = Range(0, 1)


@dataclass(frozen=True)
class Method:
    name: str
    function: Callable
    display: str  # the paper's name: table columns and figure titles
    model: str  # "logit" or "probability": what the function is given
    explains: str
    reference_batch: int = 4  # images per call in the published code (SPEC)
    rows_per_unit: int = 1  # model rows per unit of max_rows (DeepLIFT passes image and baseline)
    # --amp computes the maps in bf16: only where that moved both AUCs by <= 0.005 on the offline
    # sample (docs/PERFORMANCE.md "Opt-in speed modes"); elsewhere the maps stay fp32
    amp_maps: bool = False
    # parameters that name the output files and results.csv rows (SPEC "File names"); the grid
    # varies them. work_params: those that make a setting costlier (for choosing one to show)
    file_params: tuple = ()
    work_params: tuple = ()
    # SPEC "Models": run on copies whose ReLUs are functional (captum's rules then skip them)
    functional_relus: bool = False
    ranges: dict = field(default_factory=dict)  # parameter -> Range of its valid values

    def check_params(self, params: dict):
        """SaliencyError naming the first parameter outside its range (before any model work)."""
        for name, value in params.items():
            problem = self.ranges[name].check(value) if name in self.ranges else None
            if name == "epsilons" and (not isinstance(value, (tuple, list)) or not value
                                       or any(POSITIVE.check(e) for e in value)):
                problem = "a non-empty list of numbers > 0"
            if problem:
                raise SaliencyError(f"{self.display}'s {name} must be {problem}, got {value!r}")

    @property
    def defaults(self) -> dict:
        """The protocol parameters and their defaults, read from the function's signature."""
        params = inspect.signature(self.function).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name not in RUNTIME_ARGUMENTS}

    def takes(self, argument: str) -> bool:
        return argument in inspect.signature(self.function).parameters

    @property
    def has_published(self) -> bool:
        """Whether the published code computed something else than the default (SPEC "As
        published"): the function then takes published= and group_size=."""
        return self.takes("published")

    def reference_batch_for(self, model_name: str) -> int:
        """The published images per call on `model_name`: reference_batch, halved for maxvit_t
        except eg (SPEC "As published")."""
        if model_name == "maxvit_t" and self.name != "eg":
            return max(1, self.reference_batch // 2)
        return self.reference_batch

    def published_group(self, model_name: str) -> int:
        """G of the published computation on `model_name`: image i is in group i // G."""
        if not self.has_published:
            raise SaliencyError(f"method {self.name!r} has no published variant (it already computes as published)")
        return self.reference_batch_for(model_name)

    @property
    def explains_prediction(self) -> bool:
        """Whether it explains the model's own argmax (la, agi) rather than the label."""
        return self.takes("predicted")

    def file_setting(self, params: dict | None = None) -> tuple:
        """Values of file_params from `params`, the defaults filling the rest."""
        values = {**self.defaults, **(params or {})}
        return tuple(values[p] for p in self.file_params)


LA_PARAMS = ("spatial_range", "max_iter", "sampling_times")

ZOO = {m.name: m for m in [
    Method("la", la, "LA", "logit", "sum over S explorations of -d softmax_c/dx * (x_t+1 - x), c = argmax", 64,
           file_params=LA_PARAMS, work_params=("max_iter", "sampling_times"),
           ranges={"spatial_range": POSITIVE, "max_iter": COUNT, "sampling_times": Range(1, 1000, integer=True)}),
    Method("agi", agi, "AGI", "logit", "-d softmax_c/dx * step along sign(d softmax_l/dx) for 20 fixed classes l", 64,
           ranges={"step_size": POSITIVE, "max_iter": COUNT, "topk": Range(1, 999, integer=True)}),
    Method("attexplore", attexplore, "AttEXplore", "logit",
           "mfaba path with frequency-domain gradient ensembles of CE(softmax(logits), target)", 4,
           ranges={"epsilon": POSITIVE, "num_steps": COUNT, "num_samples": COUNT}),
    Method("big", big, "BIG", "probability", "IG of p_target from the closest FGSM boundary point", 1,
           ranges={"num_steps": COUNT, "alpha": POSITIVE, "gradient_steps": STEPS}),
    Method("deeplift", deeplift, "DeepLIFT", "probability", "captum DeepLift of p_target, zero baseline", 4,
           rows_per_unit=2, functional_relus=True),
    Method("eg", eg, "EG", "probability",
           "(x - ref) * d p_target/dx at ref + alpha (x - ref), ref from the evaluation set", 4),
    Method("fast_ig", fast_ig, "FIG", "probability", "x * d CE(p, target)/dx (log-softmax of probabilities)", 1,
           amp_maps=True),
    Method("guided_ig", guided_ig, "GIG", "probability", "Guided IG of softmax(p)[target], zero baseline", 1,
           ranges={"n_steps": COUNT, "fraction": FRACTION, "max_dist": FRACTION}),
    Method("ig", ig, "IG", "probability", "Integrated Gradients of p_target, zero baseline", 4, amp_maps=True,
           ranges={"n_steps": STEPS}),
    Method("mfaba", mfaba, "MFABA", "logit",
           "-sum_t (x_t+1 - x_t) * d softmax_target/dx along sign steps that lower it", 64,
           ranges={"epsilon": Range(0), "alpha": POSITIVE, "max_iter": COUNT}),
    Method("sg", sg, "SG", "probability", "mean of d p_target/dx at x + N(0, 0.15^2)", 4,
           ranges={"n_samples": COUNT, "stdev": Range(0)}),
    Method("sm", sm, "SM", "probability", "|d p_target/dx|", 64),
]}

PAPER_ORDER = ["la", "agi", "attexplore", "big", "deeplift", "eg", "fast_ig", "guided_ig", "ig", "mfaba", "sg", "sm"]


def built_methods():
    return list(PAPER_ORDER)


def get_method(name) -> Method:
    if name not in ZOO:
        raise SaliencyError(f"unknown method {name!r}; choose one of {', '.join(PAPER_ORDER)}")
    return ZOO[name]


def attribute(name, logit_model, images, labels, *, seed=0, indices=None, reference_images=None, max_rows=None,
              predicted=None, published=False, group_size=None, **params):
    """Maps [N,...] float32 for `images` from method `name` with its defaults overridden by params.

    labels: ground-truth targets (ignored by LA, which explains its own argmax). indices: the
    images' positions in the evaluation set, for per-image seeding. reference_images: the
    evaluation set, for methods that draw references from it (eg). max_rows: rows per model call
    inside the method (memory and speed only; None keeps the method's default). predicted: the
    class each image's prediction-explaining method (la, agi) explains; None: the model's argmax.
    published: the published computation (methods with has_published only), images coupled in
    groups of group_size consecutive indices (default: the method's reference_batch); the call
    must hold whole groups.
    """
    method = get_method(name)
    unknown = set(params) - set(method.defaults)
    if unknown:
        raise SaliencyError(f"method {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                            f"it takes {', '.join(method.defaults) or 'none'}")
    kwargs = {**method.defaults, **params}
    method.check_params(kwargs)
    accepted = inspect.signature(method.function).parameters
    optional = {"target": labels, "seed": seed, "indices": indices, "reference_images": reference_images}
    for key, value in (("max_rows", max_rows), ("predicted", predicted)):
        if value is not None:
            optional[key] = value
    optional.update(_published_arguments(method, published, group_size))
    kwargs.update({k: v for k, v in optional.items() if k in accepted})
    model = probability_model(logit_model) if method.model == "probability" else logit_model
    maps = method.function(model, images, **kwargs)
    if not torch.isfinite(maps).all():
        raise SaliencyError(f"method {name!r} produced NaN or infinite values; check the model and the images")
    return maps.float()


def _published_arguments(method: Method, published, group_size) -> dict:
    """The published=/group_size= keywords of a call (none for the default computation)."""
    if not published:
        if group_size is not None:
            raise SaliencyError("group_size applies only with published=True")
        return {}
    if not method.has_published:
        raise SaliencyError(f"method {method.name!r} has no published variant (it already computes as published)")
    return {"published": True, "group_size": method.reference_batch if group_size is None else group_size}
