"""The run value: everything one run of generate_attributions.py or eval.py is asked to do (one
cell of a grid, one step of a report), frozen. The parsers build it once from the arguments
(labench.flows.cli), the grid planner and the report build it directly (labench.flows.grid, labench.flows.report);
the logic (labench.compute.attributions, labench.compute.scoring, labench.flows.cli's checks and set-up) reads it and
nothing else."""
from __future__ import annotations

from dataclasses import dataclass

from saliency import SaliencyError, get_method

from ..nets.models import DEFAULT_MODEL, weights_tag
from .identity import OutputId, metric_options, ordered_modes


@dataclass(frozen=True)
class Run:
    model: str = DEFAULT_MODEL
    weights: str = "default"  # 'default', a torchvision weights name, 'random' or a checkpoint file
    method: str = "la"
    # ((name, value), ...): the method's file parameters; the registry's defaults fill those not given
    params: tuple = ()
    modes: tuple = ()  # mode names (labench.spec.identity), kept in file-name order
    data_dir: str = "data"
    limit: int | None = None  # only the first N images
    device: str = "auto"
    batch_size: int | None = None  # None: the job's own choice
    seed: int = 0  # of random weights and of the methods' per-image generators
    chunk: int | None = None  # images per saved chunk; None: the job's default
    max_rows: int | None = None
    group_size: int | None = None  # with the published mode: images per coupled group
    maps_dir: str = "attributions"
    scores_dir: str = "scores"
    csv_path: str = "results.csv"
    maps_file: str | None = None  # eval.py --maps: maps computed elsewhere, scored under the method's name
    runtime: str = "auto"  # the metric's forward passes on a CPU (labench.nets.runtime); the same curves to rounding

    def __post_init__(self):
        normal = {"modes": ordered_modes(self.modes), "params": _method_params(self.method, dict(self.params)),
                  "data_dir": str(self.data_dir), "maps_dir": str(self.maps_dir), "scores_dir": str(self.scores_dir),
                  "csv_path": str(self.csv_path)}
        for name, value in normal.items():
            object.__setattr__(self, name, value)  # normalized once, at construction (the value is frozen)

    @property
    def method_params(self) -> dict:
        return dict(self.params)

    @property
    def output_id(self) -> OutputId:
        """The identity of what the run's scores are (.maps(): of its maps). The seed names the
        output of a seeded method, unless random weights name it already (labench.spec.identity)."""
        return OutputId.make(self.model, self.method, weights_tag(self.weights, self.seed), self.method_params, self.modes,
                             seed=0 if self.weights == "random" else self.seed)

    @property
    def metric_options(self) -> dict:
        """{option: value} of the Insertion/Deletion options the modes set (the paper's elsewhere)."""
        return metric_options(self.modes)

    @property
    def amp(self) -> bool:
        return "amp" in self.modes

    @property
    def channels_last(self) -> bool:
        return "channels_last" in self.modes

    @property
    def published(self) -> bool:
        return "published" in self.modes

    @property
    def fast(self) -> bool:
        return "fast" in self.modes


def _method_params(method, given: dict) -> tuple:
    """The method's file parameters, in their order, the registry's defaults filling the rest; a
    method the registry does not know keeps what was given (its run fails where the method is looked up)."""
    try:
        entry = get_method(method)
    except SaliencyError:
        return tuple(given.items())
    return tuple(zip(entry.file_params, entry.file_setting(given)))
