"""The published LA code's la(), agi() and CausalMetric, imported at run time from a clone.

    published = load_published("/path/to/LA")     # git clone https://github.com/LMBTough/LA
    published.la(model, images, labels, spatial_range=20, max_iter=10, sampling_times=10)

Nothing of the published repository is copied here. Its modules clash with this project's
(`saliency`, `utils`), so they are loaded from the clone's files while this project's are set
aside, and this project's are put back afterwards (no search path is changed); the published
functions keep their own globals. Its
imports that la(), agi() and the metric never use (OpenCV) are shimmed with empty modules when
they are not installed, and on a machine without CUDA its import-time `.cuda()` calls (a
Gaussian kernel in attexplore.py) leave the tensor on the CPU. la(), agi() and the metric pick
CUDA when there is one and the CPU otherwise, so they run unchanged.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Callable, NamedTuple

import torch

CLASHING = ("saliency", "utils", "evaluation")
UNUSED_IMPORTS = ("cv2",)


class Published(NamedTuple):
    la: Callable
    agi: Callable
    CausalMetric: type
    path: Path


def _clashing(name: str) -> bool:
    return name in CLASHING or name.startswith("saliency.")


def load_published(path) -> Published:
    """la, agi and CausalMetric of the clone at `path` (its saliency/la.py, saliency/agis.py and
    evaluation.py); a clear error when `path` is not such a clone."""
    path = Path(path).resolve()
    missing = [f for f in ("saliency/la.py", "saliency/agis.py", "evaluation.py", "utils.py") if not (path / f).is_file()]
    if missing:
        raise SystemExit(f"{path} is not a clone of the published LA repository (no {', '.join(missing)}); "
                         "git clone https://github.com/LMBTough/LA and name its folder")
    ours = {name: sys.modules.pop(name) for name in list(sys.modules) if _clashing(name)}
    shims = [name for name in UNUSED_IMPORTS if not _importable(name)]
    for name in shims:
        sys.modules[name] = types.ModuleType(name)
    package = types.ModuleType("saliency")  # the published saliency/ has no __init__.py
    package.__path__ = [str(path / "saliency")]
    sys.modules["saliency"] = package
    try:
        with _cpu_cuda_calls():
            _load_file("utils", path / "utils.py")  # what evaluation.py's `from utils import *` finds
            la = importlib.import_module("saliency.la").la
            agi = importlib.import_module("saliency.agis").agi
            causal_metric = _load_file("evaluation", path / "evaluation.py").CausalMetric
    finally:
        for name in [n for n in sys.modules if _clashing(n)] + shims:
            del sys.modules[name]
        sys.modules.update(ours)
    return Published(la, agi, causal_metric, path)


@contextlib.contextmanager
def _cpu_cuda_calls():
    """Tensor.cuda() as the identity while the published modules import, where CUDA is absent."""
    if torch.cuda.is_available():
        yield
        return
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda


def _load_file(name: str, file: Path):
    """The module `name` executed from `file`, registered in sys.modules first (as an import would)."""
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False
