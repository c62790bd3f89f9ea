"""The method registry: name -> function in saliency.core, the model it is given, the output it
explains (docs/PROTOCOL.md "Which output each method explains"), what else it is given (its capabilities)
and the parameters that name its output files.

A method function declares its display name and protocol parameters (default and valid values)
once, with saliency.core.params.protocol, which checks every call; an entry here declares the
rest explicitly, and tests/test_registry.py checks that the two together name exactly the
function's keyword arguments. Every entry is called the same way through `attribute`, which
takes the logit model and hands each method the model it expects (probability = logit model
followed by Softmax). Adding a method is one file in saliency/core and one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
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
from .core.params import Param
from .core.sg import sg
from .core.sm import sm
from .errors import SaliencyError


@dataclass(frozen=True)
class Method:
    name: str
    function: Callable  # decorated with saliency.core.params.protocol: display name and parameters
    model: str  # "logit" or "probability": what the function is given
    explains: str
    reference_batch: int = 4  # images per call in the published code (docs/PROTOCOL.md)
    # capabilities: what `attribute` hands the function besides the images and max_rows=
    explains_prediction: bool = False  # predicted= (its own argmax, la and agi) instead of the labels
    seeded: bool = False  # seed= and indices=: random draws from per-image generators; its maps depend on the seed
    has_published: bool = False  # published= and group_size= (and indices=): docs/PROTOCOL.md "As published"
    takes_reference_images: bool = False  # reference_images=: the evaluation set (eg's references)
    direct_arguments: tuple = ()  # keywords only direct callers pass (la's and agi's classes=)
    rows_per_unit: int = 1  # model rows per unit of max_rows (DeepLIFT passes image and baseline)
    # --amp computes the maps in bf16: only where that moved both AUCs by <= 0.005 on the offline
    # sample (docs/PERFORMANCE.md "Opt-in speed modes"); elsewhere the maps stay fp32
    amp_maps: bool = False
    # parameters that name the output files and results.csv rows (docs/PROTOCOL.md "File names"); the grid
    # varies them. work_params: those that make a setting costlier (for choosing one to show)
    file_params: tuple = ()
    work_params: tuple = ()
    # docs/PROTOCOL.md "Models": run on copies whose ReLUs are functional (captum's rules then skip them)
    functional_relus: bool = False

    @property
    def display(self) -> str:
        """The paper's name: table columns, figure titles and error messages."""
        return self.function.protocol.display

    @property
    def params(self) -> tuple[Param, ...]:
        """The protocol parameters: name, default (the published value) and valid values."""
        return self.function.protocol.params

    @property
    def defaults(self) -> dict:
        return self.function.protocol.defaults

    def check_params(self, params: dict):
        """SaliencyError naming the first parameter outside its range (before any model work)."""
        self.function.protocol.check(params)

    @property
    def runtime_arguments(self) -> tuple:
        """The keyword arguments the capabilities above give the function, besides its parameters."""
        names = ["max_rows"]
        if self.explains_prediction:
            names.append("predicted")
        if self.seeded:
            names.append("seed")
        if self.has_published:
            names += ["published", "group_size"]
        if self.seeded or self.has_published:
            names.append("indices")
        if self.takes_reference_images:
            names.append("reference_images")
        return tuple(names) + tuple(self.direct_arguments)

    def takes(self, argument: str) -> bool:
        return argument in self.defaults or argument in self.runtime_arguments

    def file_setting(self, params: dict | None = None) -> tuple:
        """Values of file_params from `params`, the defaults filling the rest."""
        values = {**self.defaults, **(params or {})}
        return tuple(values[p] for p in self.file_params)


ZOO = {m.name: m for m in [
    Method("la", la, "logit", "sum over S explorations of -d softmax_c/dx * (x_t+1 - x), c = argmax", 64,
           explains_prediction=True, direct_arguments=("classes",), seeded=True, has_published=True,
           file_params=("spatial_range", "max_iter", "sampling_times"), work_params=("max_iter", "sampling_times")),
    Method("agi", agi, "logit", "-d softmax_c/dx * step along sign(d softmax_l/dx) for 20 fixed classes l", 64,
           explains_prediction=True, direct_arguments=("classes",), has_published=True),
    Method("attexplore", attexplore, "logit",
           "mfaba path with frequency-domain gradient ensembles of CE(softmax(logits), target)", 4, seeded=True),
    Method("big", big, "probability", "IG of p_target from the closest FGSM boundary point", 1),
    Method("deeplift", deeplift, "probability", "captum DeepLift of p_target, zero baseline", 4,
           has_published=True, rows_per_unit=2, functional_relus=True),
    Method("eg", eg, "probability", "(x - ref) * d p_target/dx at ref + alpha (x - ref), ref from the evaluation set",
           4, seeded=True, has_published=True, takes_reference_images=True),
    Method("fast_ig", fast_ig, "probability", "x * d CE(p, target)/dx (log-softmax of probabilities)", 1,
           amp_maps=True),
    Method("guided_ig", guided_ig, "probability", "Guided IG of softmax(p)[target], zero baseline", 1),
    Method("ig", ig, "probability", "Integrated Gradients of p_target, zero baseline", 4, amp_maps=True),
    Method("mfaba", mfaba, "logit", "-sum_t (x_t+1 - x_t) * d softmax_target/dx along sign steps that lower it", 64),
    Method("sg", sg, "probability", "mean of d p_target/dx at x + N(0, 0.15^2)", 4, seeded=True),
    Method("sm", sm, "probability", "|d p_target/dx|", 64),
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
    runtime = {"max_rows": max_rows, "seed": seed, "indices": indices, "reference_images": reference_images,
               "predicted": predicted, **_published_arguments(method, published, group_size)}
    kwargs = {k: v for k, v in runtime.items() if k in method.runtime_arguments}
    if not method.explains_prediction:
        kwargs["target"] = labels
    model = probability_model(logit_model) if method.model == "probability" else logit_model
    maps = method.function(model, images, **kwargs, **params)
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
