"""A run's set-up, after every field is checked: its method, its device, its data and its model
(network, weights, the cascade stage its modes name, --fast, the speed modes), and its batch."""
from __future__ import annotations

import sys

import torch

from saliency import PAPER_ORDER, SaliencyError, get_method, register

from ..errors import UserError
from ..nets.fast import fast_model
from ..nets.models import load_model, published_batch, resolve_device, with_speed_modes
from ..nets.randomisation import randomised_model
from ..spec.identity import cascade_stage
from ..spec.run import Run
from .data import load_dataset

CPU_BATCH = 16  # images per call on a CPU by default: a chunk (the unit of resume) of minutes


def method_of(run: Run):
    if run.maps_file is not None:
        return computed_elsewhere(run.method)
    try:
        return get_method(run.method)
    except SaliencyError as err:
        raise UserError(str(err)) from None


def computed_elsewhere(name: str):
    """The registry entry of maps computed outside this project (eval.py --maps), by their name."""
    if name in PAPER_ORDER or ":" in name:
        raise UserError(f"--maps scores maps computed elsewhere: name them with --attr_method, a name of your own "
                        f"(not {name!r})")
    try:
        return register(_maps_from_a_file, name, source="maps computed elsewhere")
    except SaliencyError as err:
        raise UserError(str(err)) from None


def _maps_from_a_file(model, images, target):
    raise UserError("these maps were computed elsewhere: eval.py --maps scores them, nothing here computes them")


def output_id(run: Run):
    """The identity of what the run writes (eval.py: the scores; .maps(): the maps)."""
    method_of(run)
    return run.output_id


def bf16_maps(run: Run) -> bool:
    """--amp computes the maps in bf16 only for methods whose AUCs it moves by at most 0.005;
    the others keep fp32 maps (and --amp speeds up their scoring alone)."""
    return run.amp and method_of(run).amp_maps


def default_batch_size(method, model, device="cuda"):
    """The published batch size (halved for maxvit_t, except eg), but at least 8 images: the
    published batch of 1 for fast_ig, guided_ig and big only starved the device, and maps do not
    depend on the batch. On a CPU at most CPU_BATCH: rows per model call are capped separately
    (--max_rows), so a larger batch only made the unit of resume (a chunk of whole batches) longer:
    LA's 64 images were one hour-long chunk at one thread."""
    size = max(published_batch(method, model), 8)
    return min(size, CPU_BATCH) if torch.device(device).type == "cpu" else size


def published_group(run: Run):
    """G under --published for a method with a published variant (--group_size or the published
    size), else None (the default computation: other methods already are as published)."""
    method = method_of(run)
    if run.group_size is not None and not run.published:
        raise UserError("--group_size applies only with --published")
    if not (run.published and method.has_published):
        return None
    if run.group_size is not None and run.group_size < 1:
        raise UserError("--group_size must be at least 1")
    return run.group_size or published_batch(method.name, run.model)


def published_batch_size(batch_size, group):
    """The batch size as a whole number of groups (at least one): calls never split a group."""
    return group * max(1, -(-batch_size // group))


def check_arguments(run: Run):
    """Every field checked before any data is read, any model built or any file written: counts
    >= 1, the method's parameters within their ranges (its registry entry), --group_size only
    with --published."""
    method = method_of(run)
    counts = {"--batch_size": run.batch_size, "--max_rows": run.max_rows, "--chunk": run.chunk, "--limit": run.limit,
              "--group_size": run.group_size}
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if run.seed < 0:
        raise UserError(f"--seed must be at least 0, got {run.seed}")
    for name, value in run.method_params.items():
        try:
            method.check_params({name: value})
        except SaliencyError as err:
            raise UserError(f"{err}: pass a valid --{name}") from None
    published_group(run)


def load_inputs(run: Run, amp=None, before_model=None):
    """(images, labels, logit model, device) after checking every field. amp: bf16 autocast
    (default: the run's amp mode). before_model(images): the script's own checks of its inputs and
    outputs, run once the images are known and before the model is built."""
    check_arguments(run)
    device = resolve_device(run.device)
    images, labels = load_dataset(run.data_dir, run.limit)
    if before_model is not None:
        before_model(images)
    return images, labels, build_model(run, device, tuple(images.shape[1:]), amp), device


def network(run: Run, device="cpu"):
    """The run's model as its weights give it, before a mode changes it (labench.nets.models.load_model)."""
    return load_model(run.model, weights=run.weights, device=device, seed=run.seed)


def build_model(run: Run, device, image_shape, amp=None):
    """The run's logit model: its network and weights, randomised to the stage a cascade mode names
    (labench.nets.randomisation, on a copy), then made what the method and the modes ask for."""
    model = network(run, device)
    stage = cascade_stage(run.modes)
    if stage is not None:
        model = randomised_model(model, stage, run.seed)
    if run.fast:
        model, done = fast_model(model, image_shape)
        print(f"note: --fast folded {done['folded']} BatchNorms into their convolutions and fixed the padding of "
              f"{done['static_padding']} TF-SAME convolutions", file=sys.stderr)
    amp = run.amp if amp is None else amp
    return with_speed_modes(model, amp=amp, channels_last=run.channels_last)
