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

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from .core.agi import agi
from .core.attexplore import attexplore
from .core.big import big
from .core.common import checked_classes, image_indices, predict
from .core.deeplift import deeplift
from .core.eg import eg
from .core.fast_ig import fast_ig
from .core.guided_ig import guided_ig
from .core.ig import ig
from .core.la import la
from .core.mfaba import mfaba
from .core.params import Param, protocol
from .core.sg import sg
from .core.sm import sm
from .errors import SaliencyError
from .models import probability_model


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
    takes_max_rows: bool = True  # max_rows=: rows per model call (the twelve; a user's method need not take it)
    source: str = ""  # where a method registered from outside comes from ("module:function"); "" = built in

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
        names = ["max_rows"] if self.takes_max_rows else []
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
           has_published=True, rows_per_unit=2),
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
    """The registry entry of `name`: a built-in method, one added by `register`, or
    "module:function" / "path/to/file.py:function", imported and registered on first use under
    the function's name."""
    if isinstance(name, str) and ":" in name:
        return _imported_method(name)
    if name not in ZOO:
        raise SaliencyError(f"unknown method {name!r}; choose one of {', '.join(ZOO)}, "
                            "or name your own function as module:function")
    return ZOO[name]


def register(function: Callable, name: str | None = None, *, model: str = "logit", display: str | None = None,
             seeded: bool = False, source: str = "", replace: bool = False) -> Method:
    """Add a method of your own to the registry, beside the twelve, and return its entry.

    Args:
        function: `function(model, images, target, **params) -> maps`: model is the logit
            model (or the probability model with model="probability"), images [N,C,H,W] in
            [0, 1], target [N] the classes to explain; maps shaped like images.
        name: the method's name in file names, results.csv rows and `attribute` (default: the
            function's name); a name the registry holds for another function is refused.
        display: its table column and figure title (default: the name).
        seeded: whether it also takes seed= and indices= (a generator per image index).
        source: where it comes from, for messages ("module:function").
        replace: let this function take the name of an earlier one of your own (a notebook cell
            run again); the twelve built-in names are never replaced.

    Returns:
        The `Method`; `attribute(name, ...)` and the benchmark's scripts then run it.
    """
    name = name or getattr(function, "__name__", "")
    if not name.isidentifier():
        raise SaliencyError(f"a method name must be a Python identifier (it names files), got {name!r}")
    if model not in ("logit", "probability"):
        raise SaliencyError(f"model must be 'logit' or 'probability', got {model!r}")
    if not callable(function):
        raise SaliencyError(f"method {name!r}: {function!r} is not callable")
    known = ZOO.get(name)
    if known is not None and getattr(known.function, "__wrapped__", None) is function:
        return known  # the same function again
    if known is not None and (name in PAPER_ORDER or not replace):
        taken_by = "a built-in method" if name in PAPER_ORDER else known.source or "another function"
        raise SaliencyError(f"the method name {name!r} is taken ({taken_by}); register yours under another name"
                            + ("" if name in PAPER_ORDER else ", or pass replace=True"))
    entry = Method(name, protocol(display or name)(function), model, f"a method of your own ({source or name})",
                   seeded=seeded, takes_max_rows=False, source=source)
    ZOO[name] = entry
    return entry


def _imported_method(spec: str) -> Method:
    """The entry of "module:function" or "path/file.py:function", registered under the function's name."""
    where, _, function_name = spec.rpartition(":")
    known = ZOO.get(function_name)
    if known is not None and known.source == spec:
        return known
    if not where or not function_name.isidentifier():
        raise SaliencyError(f"{spec!r} does not name a function: write module:function or path/to/file.py:function")
    module = _module_of(where, spec)
    function = getattr(module, function_name, None)
    if function is None:
        raise SaliencyError(f"{where} has no function {function_name!r} (from {spec!r})")
    return register(function, function_name, source=spec)


def _module_of(where: str, spec: str):
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise SaliencyError(f"no file {where} (from {spec!r}); give its path from the folder you run in")
        loader_spec = importlib.util.spec_from_file_location(f"saliency_user_method_{path.stem}", path)
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        raise SaliencyError(f"cannot import {where!r} (from {spec!r}: {err}); give the file instead "
                            f"({where.replace('.', '/')}.py:...) or put its folder on PYTHONPATH") from None


def attribute(name: str, logit_model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
              target: torch.Tensor | int | None = None, seed: int = 0, indices=None,
              reference_images: torch.Tensor | None = None, max_rows: int | None = None,
              predicted: torch.Tensor | None = None, published: bool = False, group_size: int | None = None,
              **params) -> torch.Tensor:
    """Attribution maps of `images` by the method `name`, with its defaults overridden by `params`.

    Args:
        name: a method of the registry (`ZOO`, in `PAPER_ORDER`), e.g. "la", "ig".
        logit_model: any nn.Module mapping images [N,C,H,W] to logits [N, classes], its
            preprocessing inside (`saliency.normalized(net, mean, std)`); methods that need
            probabilities get it followed by Softmax.
        images: [N,C,H,W] floats in [0, 1], on the model's device.
        labels: the class each image's map explains, [N] integers (the benchmark passes the
            labels). Ignored by la and agi, which explain the model's prediction, as the paper does.
        target: captum's name for the class explained: [N] integers or one int for every image;
            given to every method, la and agi included. With neither labels nor target, every
            method explains the model's prediction (its argmax on the clean image).
        seed: the seed of the per-image random draws (sg, eg, la, attexplore).
        indices: the images' positions in the evaluation set, which seed each image's draws
            (default 0..N-1), so a map does not depend on its batch.
        reference_images: the evaluation set, for methods that draw references from it (eg).
        max_rows: rows per model call inside the method (memory and speed only).
        predicted: the class la and agi explain; None: the model's argmax.
        published: the published computation (methods with has_published), images coupled in
            groups of group_size consecutive indices (default: the method's reference_batch).
        **params: the method's protocol parameters (`get_method(name).defaults`).

    Returns:
        Maps float32, shaped like `images`, on their device.

    Raises:
        SaliencyError: an unknown method or parameter, a parameter out of range, classes that do
            not match the images, or a map with NaN or infinite values. A map that is constant for
            an image (nothing to rank) is a warning naming the image.
    """
    method = get_method(name)
    unknown = set(params) - set(method.defaults)
    if unknown:
        raise SaliencyError(f"method {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                            f"it takes {', '.join(method.defaults) or 'none'}")
    labels, predicted = _classes_explained(method, logit_model, images, labels, target, predicted, max_rows)
    runtime = {"max_rows": max_rows, "seed": seed, "indices": indices, "reference_images": reference_images,
               "predicted": predicted, **_published_arguments(method, published, group_size)}
    kwargs = {k: v for k, v in runtime.items() if k in method.runtime_arguments}
    if not method.explains_prediction:
        kwargs["target"] = labels
    model = probability_model(logit_model) if method.model == "probability" else logit_model
    maps = method.function(model, images, **kwargs, **params)
    if not isinstance(maps, torch.Tensor) or maps.shape != images.shape:
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise SaliencyError(f"method {name!r} returned {got} for images {tuple(images.shape)}; it must return one map "
                            "per image, shaped like the images")
    if not torch.isfinite(maps).all():
        raise SaliencyError(f"method {name!r} produced NaN or infinite values; check the model and the images")
    _warn_constant_maps(name, maps, indices)
    return maps.float()


def _classes_explained(method: Method, logit_model, images, labels, target, predicted, max_rows):
    """(labels, predicted) as the method function takes them, from the caller's labels or target."""
    if target is not None:
        if labels is not None:
            raise SaliencyError("pass the classes to explain once: labels (positional) or target=, not both")
        if predicted is not None:
            raise SaliencyError("pass target= or predicted=, not both")
        target = _as_classes(target, len(images), images.device)
        if method.explains_prediction:
            return None, target
        return target, predicted
    if labels is None and not method.explains_prediction:
        labels = predict(logit_model, images, max_rows or 64)
    elif labels is not None:
        labels = _as_classes(labels, len(images), images.device)
    return labels, predicted


def _as_classes(classes, n: int, device) -> torch.Tensor:
    if isinstance(classes, int):
        return torch.full((n,), classes, dtype=torch.long, device=device)
    if not isinstance(classes, torch.Tensor) or classes.is_floating_point() or classes.is_complex():
        raise SaliencyError(f"classes to explain must be an int or an integer tensor [N], got {type(classes).__name__}"
                            f"{' of ' + str(classes.dtype) if isinstance(classes, torch.Tensor) else ''}")
    return checked_classes(classes, n, device)


def _warn_constant_maps(name: str, maps: torch.Tensor, indices) -> None:
    flat = maps.reshape(len(maps), -1)
    constant = (flat == flat[:, :1]).all(dim=1).nonzero().view(-1).tolist()
    if constant:
        named = [image_indices(indices, len(maps))[i] for i in constant]
        warnings.warn(f"method {name!r} returned a constant map for image(s) {', '.join(map(str, named))}: "
                      "Insertion and Deletion have nothing to rank in it", stacklevel=3)


def _published_arguments(method: Method, published, group_size) -> dict:
    """The published=/group_size= keywords of a call (none for the default computation)."""
    if not published:
        if group_size is not None:
            raise SaliencyError("group_size applies only with published=True")
        return {}
    if not method.has_published:
        raise SaliencyError(f"method {method.name!r} has no published variant (it already computes as published)")
    return {"published": True, "group_size": method.reference_batch if group_size is None else group_size}
