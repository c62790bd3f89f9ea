"""One identity of an output: (model, weights, method, method parameters, modes).

It gives the file stem of the maps and of the scores (SPEC "File names"), the results.csv row
key, the table column and the plot label, and parses back from a file name. Every script,
plot.py, tables.py and para_explore.sh (through `python -m labench.stems`) name their
outputs through it.

    efficientnet_lite0_la_spatial-range-20_max-iter-20_sampling-times-20
    resnet50-random-amp-channels_last_sm
    <model>[-<weights>][-<mode>...]_<method>[_<param>-<value>...]

Modes are opt-in changes of the numbers, in this order: amp, channels_last (speed modes; amp
changes only the maps of methods whose registry entry says amp_maps), published (the published
scripts' computation: it changes the maps of methods with a published variant and always the
scores, whose ties it orders as NumPy did), fast (the same function made cheaper, labench.fast:
float rounding moves maps and scores), then metric variants, which change the scores and never
the maps.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from saliency import PAPER_ORDER, ZOO, get_method

from .errors import UserError

# every mode, in file-name order; which ones change the maps of which method: maps_modes()
MODES = ("amp", "channels_last", "published", "fast", "substrate_blur", "substrate_mean", "order_pixel")
METRIC_MODES = {"substrate_blur", "substrate_mean", "order_pixel"}
# the SPEC's results.csv columns of LA's three parameters
CSV_PARAM_COLUMNS = {"spatial_range": "spatial_range", "max_iter": "max-iter", "sampling_times": "samples_number"}
PARAM_SYMBOLS = {"spatial_range": "r", "max_iter": "T", "sampling_times": "S"}
MISSING = "-"
MAPS_SUFFIX, SCORES_SUFFIX = "_attributions.npy", "_scores.npz"


def model_tag(model: str, weights: str = "", modes=()) -> str:
    """The model part of file names and the results.csv `model` column: model[-weights][-mode...]."""
    return "-".join([model, *([weights] if weights else []), *modes])


def maps_modes(method: str, modes) -> tuple:
    """The modes that change a method's maps: no metric variant; amp only where the maps are bf16;
    published only for methods with a published variant (the others' maps are the default ones)."""
    entry = get_method(method)
    changes = {"amp": entry.amp_maps, "published": entry.has_published}
    return tuple(m for m in modes if m not in METRIC_MODES and changes.get(m, True))


@dataclass(frozen=True)
class OutputId:
    model: str
    method: str
    weights: str = ""  # the weights tag ('' = default weights), see labench.models.weights_tag
    params: tuple = ()  # values of the method's file_params, in their order
    modes: tuple = field(default=())

    @classmethod
    def make(cls, model, method, weights="", params: dict | None = None, modes=()):
        """The identity of `method` on `model` with `params` (defaults fill the method's file
        parameters) under `modes` (any order; unknown modes are an error)."""
        entry = get_method(method)
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise UserError(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
        weights = "" if weights in (None, "default") else weights
        return cls(model, method, weights, tuple(entry.file_setting(params)), tuple(m for m in MODES if m in modes))

    # ------------------------------------------------ names

    @property
    def model_tag(self) -> str:
        return model_tag(self.model, self.weights, self.modes)

    @property
    def stem(self) -> str:
        entry = get_method(self.method)
        parts = [f"{p.replace('_', '-')}-{v}" for p, v in zip(entry.file_params, self.params)]
        return "_".join([self.model_tag, self.method, *parts])

    def maps(self) -> "OutputId":
        """The identity of the maps this output scores."""
        return replace(self, modes=maps_modes(self.method, self.modes))

    @property
    def maps_file(self) -> str:
        return self.maps().stem + MAPS_SUFFIX

    @property
    def scores_file(self) -> str:
        return self.stem + SCORES_SUFFIX

    @property
    def setting(self) -> dict:
        return dict(zip(get_method(self.method).file_params, self.params))

    @property
    def column(self) -> str:
        """Table column: the method's display name."""
        return get_method(self.method).display

    @property
    def label(self) -> str:
        """Plot label: the display name with the setting, e.g. 'LA (r=20, T=20, S=20)'."""
        if not self.params:
            return self.column
        inner = ", ".join(f"{PARAM_SYMBOLS.get(p, p)}={v}" for p, v in self.setting.items())
        return f"{self.column} ({inner})"

    def csv_key(self) -> dict:
        """The results.csv key columns of this output (SPEC: '-' in LA's columns for other methods)."""
        row = {"model": self.model_tag, "attr_method": self.method}
        row.update({column: MISSING for column in CSV_PARAM_COLUMNS.values()})
        for p, v in self.setting.items():
            row[CSV_PARAM_COLUMNS[p]] = v
        return row

    # ------------------------------------------------ parsing

    @classmethod
    def parse(cls, name: str) -> "OutputId":
        """The identity named by a file name or stem (suffixes _attributions.npy / _scores.npz dropped)."""
        stem = name.rsplit("/", 1)[-1]
        for suffix in (MAPS_SUFFIX, SCORES_SUFFIX):
            stem = stem.removesuffix(suffix)
        for method in sorted(ZOO, key=len, reverse=True):  # fast_ig before ig
            params = get_method(method).file_params
            pattern = "_" + re.escape(method) + "".join(f"_{re.escape(p.replace('_', '-'))}-([^_]+)" for p in params)
            match = re.fullmatch(r"(.+)" + pattern, stem)
            if match:
                values = tuple(_number(v) for v in match.groups()[1:])
                return _from_tag(match.group(1), method, values)
        raise UserError(f"{name!r} does not name an output (expected <model>_<method>[_<param>-<value>...])")

    @classmethod
    def from_csv_row(cls, row: dict) -> "OutputId":
        method = row["attr_method"].strip()
        entry = get_method(method)
        columns = [CSV_PARAM_COLUMNS[p] for p in entry.file_params]
        values = tuple(_number(str(row[c]).strip()) for c in columns)
        return _from_tag(row["model"].strip(), method, values)


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


def parse_model_tag(tag: str):
    """(model, weights tag, modes) of a model tag."""
    parts = tag.split("-")
    modes = []
    while len(parts) > 1 and parts[-1] in MODES:
        modes.insert(0, parts.pop())
    return parts[0], "-".join(parts[1:]), tuple(modes)


def _from_tag(tag, method, values):
    model, weights, modes = parse_model_tag(tag)
    return OutputId(model, method, weights, values, modes)


# ---------------------------------------------------------------- choosing one setting to show


def choose_setting(method: str, settings, wanted: dict | None = None):
    """The setting (tuple of file-param values) that figures and tables show for a method with
    file parameters, or None when none matches. wanted: {param: value} to match, None = any.

    The one rule: the method's default setting if present; else the most work (the product of
    its work_params); else the values closest to the defaults; else the smallest.
    """
    entry = get_method(method)
    names = entry.file_params
    default = entry.file_setting()
    wanted = {k: v for k, v in (wanted or {}).items() if v is not None}
    matching = [s for s in settings if all(wanted.get(p, v) == v for p, v in zip(names, s))]
    if not matching:
        return None

    def work(setting):
        product = 1
        for p, v in zip(names, setting):
            product *= v if p in entry.work_params else 1
        return product

    def distance(setting):
        return sum(abs(v - d) for p, v, d in zip(names, setting, default) if p not in entry.work_params)

    return min(matching, key=lambda s: (tuple(s) != tuple(default), -work(s), distance(s), tuple(s)))


def method_order(methods):
    """The paper's order, then unknown methods in order of appearance."""
    methods = list(dict.fromkeys(methods))
    return [m for m in PAPER_ORDER if m in methods] + [m for m in methods if m not in PAPER_ORDER]
