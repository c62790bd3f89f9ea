"""One identity of an output: (model, weights, method, method parameters, modes).

It gives the file stem of the maps and of the scores (docs/PROTOCOL.md "File names"), the results.csv row
key, the table column and the plot label, and parses back from a file name or a results.csv row
(here, and nowhere else: tables, statistics and plots read the fields). Every script, plot.py,
tables.py and the grid planner (labench.flows.grid) name their outputs through it.

    efficientnet_lite0_la_spatial-range-20_max-iter-20_sampling-times-20
    resnet50-random-amp-channels_last_sm
    efficientnet_lite0-seed1_la_spatial-range-20_max-iter-20_sampling-times-20
    <model>[-<weights>][-<mode>...][-seed<N>]_<method>[_<param>-<value>...]

The seed: a method whose maps depend on it (its registry entry says `seeded`) run with a seed
other than 0 is another output, named `-seed<N>` at the end of the model tag (seed 0, the
default, adds nothing, and a method whose maps do not depend on the seed never carries it).
Random weights of another seed already name it in their weights tag (`random_seed<N>`, the seed
draws the weights too), so their tag carries no second one.

Modes are opt-in changes of the numbers, each declared once below as a `Mode` (its name in file
names, its flag's help, whether it changes a method's maps), in this order: amp, channels_last
(speed modes; amp changes only the maps of methods whose registry entry says amp_maps),
published (the published scripts' computation: it changes the maps of methods with a published
variant and always the scores, whose ties it orders as NumPy did), fast (the same function made
cheaper, labench.nets.fast: float rounding moves maps and scores), the sanity checks (cascade1 ..
cascade5: the model randomised from the top down to that stage; random_logit: another class
explained; alternatives, one at a time), then the metric variants, which
change the scores and never the maps. The metric variants are not listed by hand: every value
of an Insertion/Deletion option but the paper's (saliency.metric's SUBSTRATES and ORDERS, whose
first value is the paper's) is the mode `<option>_<value>`, e.g. substrate_blur, order_pixel.
A mode registered later (`register_mode`) joins the file names, the results.csv rows, the
scripts' flags (labench.flows.cli), the report's variants and the grid, with no other edit.

Parsing a model tag (`parse_model_tag`): modes are known names, read from the end; weights tags
never hold '-' (labench.nets.models.weights_tag). What is left is `model` or `model-weights`, and a
model name may hold '-' (a timm or hub-style name), so the split uses the models labench knows
(labench.nets.models.is_known_model): at the last '-' when the part before it is a known model, else
no weights when the whole is a known model, else at the first '-' (a model this installation
does not know: the rule before model names could hold '-'). `OutputId.make` refuses a model whose
tag would not parse back to it (a model name ending in a mode's name, or one that reads as a
known model and its weights).
"""
from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass, field, replace
from typing import Callable

from saliency import PAPER_ORDER, ZOO, Method, SaliencyError, get_method
from saliency.core.params import protocol
from saliency.metric import ORDERS, SUBSTRATES

from ..errors import UserError
from ..nets.models import is_known_model
from ..nets.randomisation import CASCADE_STAGES

# the Insertion/Deletion options whose other values are metric variants; the first value is the paper's
METRIC_OPTIONS = {"substrate": SUBSTRATES, "order": ORDERS}
# the results.csv columns (docs/PROTOCOL.md "File names") of LA's three parameters
CSV_PARAM_COLUMNS = {"spatial_range": "spatial_range", "max_iter": "max-iter", "sampling_times": "samples_number"}
PARAM_SYMBOLS = {"spatial_range": "r", "max_iter": "T", "sampling_times": "S"}
MISSING = "-"  # a value that is absent or does not apply: in results.csv and in every table
PAPER = "paper"  # the protocol of an output without metric variants
LEAD = "la"  # the method the benchmark is about: compared with every other one, its grid tabulated
MAPS_SUFFIX, SCORES_SUFFIX = "_attributions.npy", "_scores.npz"


# ---------------------------------------------------------------- modes, each declared once


@dataclass(frozen=True)
class Mode:
    """One opt-in change of the numbers. name: its part of file names and results.csv rows (and,
    for a flag mode, the scripts' flag --<name>); changes_maps: whether it changes a method's maps,
    a bool or a function of the method's registry entry; option: for a metric variant, the
    InsertionDeletion option and value it sets, e.g. ("substrate", "blur"); group: a name the
    modes that exclude each other share (the sanity checks)."""
    name: str
    help: str = ""
    changes_maps: bool | Callable = True
    option: tuple | None = None
    group: str = ""  # modes of one group are alternatives: a run takes at most one of them

    @property
    def is_metric_variant(self) -> bool:
        return self.option is not None

    @property
    def variant(self) -> str | None:
        """A metric variant's short name (its value: blur, mean, pixel), as report.py takes it."""
        return self.option[1] if self.option else None

    def changes_maps_of(self, method: str) -> bool:
        if callable(self.changes_maps):
            return bool(self.changes_maps(entry_of(method)))
        return self.changes_maps


def metric_variant(option: str, value: str) -> Mode:
    """The mode of one non-default value of a metric option: scores only, never the maps."""
    return Mode(f"{option}_{value}", f"metric variant: {option}={value}", changes_maps=False, option=(option, value))


FLAG_MODES = (
    Mode("amp", "opt-in: bf16 autocast (docs/PERFORMANCE.md: speed, AUC shift)",
         changes_maps=lambda entry: entry.amp_maps),
    Mode("channels_last", "opt-in: channels_last memory format"),
    Mode("published", "opt-in: what the published scripts computed (docs/PROTOCOL.md 'As published'): la, agi, deeplift and eg "
                      "couple the images of each group of consecutive indices; the metric orders ties as NumPy's "
                      "argsort. Tagged -published; never mixed with the default",
         changes_maps=lambda entry: entry.has_published),
    Mode("fast", "opt-in: the same function made cheaper (BatchNorm folded into its convolution, TF-SAME padding "
                 "fixed once; labench.nets.fast), checked against the model's logits. Tagged -fast: float rounding "
                 "moves the maps"),
)
# the sanity checks (sanity.py, docs/PROTOCOL.md "Sanity checks"), one at a time: the model's parameters
# randomised from the top down to stage k (labench.nets.randomisation), or another class explained
SANITY = "sanity"
CASCADE_SPANS = {1: "the head", CASCADE_STAGES: "every layer"}  # the other stages: the head and the last blocks
CASCADE_MODES = {k: Mode(f"cascade{k}", f"sanity check: the model's parameters randomised from the top down to "
                                        f"stage {k} of {CASCADE_STAGES}, "
                                        f"{CASCADE_SPANS.get(k, 'the head and the last blocks')} "
                                        f"(labench.nets.randomisation), drawn from --seed. Tagged -cascade{k}", group=SANITY)
                 for k in range(1, CASCADE_STAGES + 1)}  # {stage: its mode}
RANDOM_LOGIT = Mode("random_logit", "sanity check: every method explains a randomly drawn other class of each image "
                                    "(drawn per image from --seed). Tagged -random_logit", group=SANITY)
# every mode by name, in file-name order: the flag modes, the sanity checks, then a variant per
# non-default metric value
MODE_REGISTRY = {m.name: m for m in (*FLAG_MODES, *CASCADE_MODES.values(), RANDOM_LOGIT,
                                     *(metric_variant(option, value) for option, values in METRIC_OPTIONS.items()
                                       for value in values[1:]))}


def register_mode(mode: Mode) -> Mode:
    """Declare one more mode (after the others in file names). A metric variant's option must be
    one of METRIC_OPTIONS (the metric must implement the value); its name is <option>_<value>."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", mode.name) or mode.name in MODE_REGISTRY:
        raise ValueError(f"mode name {mode.name!r} is taken or not lower-case letters, digits and '_'")
    if mode.option is not None and (mode.option[0] not in METRIC_OPTIONS or mode != metric_variant(*mode.option)):
        raise ValueError(f"a metric variant is metric_variant(option, value) of an option in {list(METRIC_OPTIONS)}")
    MODE_REGISTRY[mode.name] = mode
    return mode


def declaration(name: str) -> Mode:
    """The Mode declared under `name`."""
    return MODE_REGISTRY[name]


class ModeNames(Set):
    """A live, ordered view of the names of the registered modes that `keep` selects."""

    def __init__(self, keep: Callable[[Mode], bool]):
        self._keep = keep

    def _names(self):
        return [name for name, mode in MODE_REGISTRY.items() if self._keep(mode)]

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def __contains__(self, name):
        return name in MODE_REGISTRY and self._keep(MODE_REGISTRY[name])

    def __repr__(self):
        return f"ModeNames({self._names()})"


MODES = ModeNames(lambda mode: True)  # every mode, in file-name order
METRIC_MODES = ModeNames(lambda mode: mode.is_metric_variant)
FLAG_MODE_NAMES = ModeNames(lambda mode: not mode.is_metric_variant)  # the scripts' flags --<name>


def ordered_modes(modes) -> tuple:
    """The mode names in file-name order; an unknown mode, or two values of one metric option,
    is an error."""
    modes = set(modes)
    unknown = sorted(modes - set(MODES))
    if unknown:
        raise UserError(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    ordered = tuple(name for name in MODES if name in modes)
    options = [MODE_REGISTRY[name].option[0] for name in ordered if name in METRIC_MODES]
    if len(options) != len(set(options)):
        raise UserError(f"modes {', '.join(ordered)} set one metric option twice")
    groups = {}
    for name in ordered:
        groups.setdefault(MODE_REGISTRY[name].group, []).append(name)
    for group, names in groups.items():
        if group and len(names) > 1:
            raise UserError(f"modes {', '.join(names)} are alternatives ({group}); choose one")
    return ordered


def cascade_stage(modes) -> int | None:
    """The cascade stage the modes name (1..CASCADE_STAGES), None where they name none."""
    return next((k for k, mode in CASCADE_MODES.items() if mode.name in modes), None)


def metric_values(option: str) -> tuple:
    """The values of a metric option the scripts accept: the paper's first, then its variants."""
    return (METRIC_OPTIONS[option][0],
            *(MODE_REGISTRY[name].option[1] for name in METRIC_MODES if MODE_REGISTRY[name].option[0] == option))


def metric_options(modes=()) -> dict:
    """{option: value} of every metric option under `modes` (the paper's value where no variant is set)."""
    options = {option: values[0] for option, values in METRIC_OPTIONS.items()}
    options.update(MODE_REGISTRY[name].option for name in modes if name in METRIC_MODES)
    return options


def metric_mode(option: str, value: str) -> tuple:
    """() for the paper's value of an option, else (the name of its variant mode,)."""
    if value == METRIC_OPTIONS[option][0]:
        return ()
    name = metric_variant(option, value).name
    if name not in METRIC_MODES:
        raise UserError(f"{option} {value!r} is not a metric variant; choose from {', '.join(metric_values(option))}")
    return (name,)


def metric_variants() -> dict:
    """{short name: mode name} of every metric variant (report.py --variants)."""
    return {MODE_REGISTRY[name].variant: name for name in METRIC_MODES}


def model_tag(model: str, weights: str = "", modes=(), seed: int = 0) -> str:
    """The model part of file names and the results.csv `model` column: model[-weights][-mode...][-seed<N>]."""
    return "-".join([model, *([weights] if weights else []), *modes, *([f"seed{seed}"] if seed else [])])


def maps_modes(method: str, modes) -> tuple:
    """The modes that change a method's maps: no metric variant; amp only where the maps are bf16;
    published only for methods with a published variant (the others' maps are the default ones)."""
    return tuple(m for m in modes if MODE_REGISTRY[m].changes_maps_of(method))


# ---------------------------------------------------------------- the identity


@dataclass(frozen=True)
class OutputId:
    model: str
    method: str
    weights: str = ""  # the weights tag ('' = default weights), see labench.nets.models.weights_tag
    params: tuple = ()  # values of the method's file_params, in their order
    modes: tuple = field(default=())  # mode names, in file-name order (MODE_REGISTRY)
    seed: int = 0  # the seed of a seeded method's random draws where the weights tag does not name it

    @classmethod
    def make(cls, model, method, weights="", params: dict | None = None, modes=(), seed=0):
        """The identity of `method` on `model` with `params` (defaults fill the method's file
        parameters) under `modes` (any order; unknown modes are an error); `seed` is kept only for
        a method whose maps depend on it (module docstring)."""
        entry = get_method(method)
        weights = "" if weights in (None, "default") else weights
        seed = int(seed) if entry.seeded else 0
        out = cls(model, entry.name, weights, tuple(entry.file_setting(params)), ordered_modes(modes), seed)
        if read_model_tag(out.model_tag) != (out.model, out.weights, out.modes, out.seed):
            raise UserError(f"model {model!r} with weights {weights or 'default'!r} cannot name files: its tag "
                            f"{out.model_tag!r} reads back as another model, weights or modes")
        return out

    # ------------------------------------------------ names

    @property
    def model_tag(self) -> str:
        return model_tag(self.model, self.weights, self.modes, self.seed)

    @property
    def stem(self) -> str:
        entry = entry_of(self.method)
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
        return dict(zip(entry_of(self.method).file_params, self.params))

    @property
    def column(self) -> str:
        """Table column: the method's display name."""
        return entry_of(self.method).display

    @property
    def label(self) -> str:
        """Plot label: the display name with the setting, e.g. 'LA (r=20, T=20, S=20)'."""
        if not self.params:
            return self.column
        inner = ", ".join(f"{PARAM_SYMBOLS.get(p, p)}={v}" for p, v in self.setting.items())
        return f"{self.column} ({inner})"

    # ------------------------------------------------ the modes as fields

    @property
    def mode_declarations(self) -> tuple:
        """The Mode of each of the identity's modes."""
        return tuple(MODE_REGISTRY[name] for name in self.modes)

    @property
    def metric_options(self) -> dict:
        """{option: value} of the metric that scored this output (labench.compute.scoring)."""
        return metric_options(self.modes)

    @property
    def protocol(self) -> str:
        """The metric protocol: 'paper', or its metric variants joined by '+' (e.g. 'substrate_blur')."""
        return "+".join(name for name in self.modes if name in METRIC_MODES) or PAPER

    def without_metric_variants(self) -> "OutputId":
        """The same output under the paper's metric (what a metric variant is compared with)."""
        return replace(self, modes=tuple(name for name in self.modes if name not in METRIC_MODES))

    # ------------------------------------------------ results.csv

    def csv_key(self) -> dict:
        """The results.csv key columns of this output (docs/PROTOCOL.md: '-' in LA's columns for other methods)."""
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
        entry = entry_of(method)
        columns = [CSV_PARAM_COLUMNS[p] for p in entry.file_params]
        values = tuple(_number(str(row[c]).strip()) for c in columns)
        return _from_tag(row["model"].strip(), method, values)


def entry_of(method: str) -> Method:
    """The registry entry of an output's method. A method registered in another process (a
    user's function, run as module:function) is known here by its name alone, as its files and
    results.csv rows carry it: it reads as a method without file parameters, its name as its
    display name."""
    try:
        return get_method(method)
    except SaliencyError:
        if not method.isidentifier():
            raise UserError(f"{method!r} names no method (a method's name is a Python identifier)") from None
        return Method(method, protocol(method)(_not_here), "logit", "a method registered in another process",
                      takes_max_rows=False, source=method)


def _not_here(*args, **kwargs):
    raise UserError("this method was registered in another process; name it as module:function to run it")


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


SEED_PART = re.compile(r"-seed([1-9][0-9]*)$")


def read_model_tag(tag: str):
    """(model, weights tag, modes, seed) of a model tag: the one place that reads a tag (module docstring)."""
    match = SEED_PART.search(tag)
    seed = int(match.group(1)) if match else 0
    return (*parse_model_tag(tag[: match.start()] if match else tag), seed)


def parse_model_tag(tag: str):
    """(model, weights tag, modes) of a model tag without its seed part (`read_model_tag` reads that too)."""
    parts = tag.split("-")
    modes = []
    while len(parts) > 1 and parts[-1] in MODES:
        modes.insert(0, parts.pop())
    model, weights = _model_and_weights("-".join(parts))
    return model, weights, tuple(modes)


def _model_and_weights(rest: str):
    """(model, weights tag) of `model` or `model-weights`; a model name may hold '-'."""
    if "-" not in rest:
        return rest, ""
    head, last = rest.rsplit("-", 1)
    if is_known_model(head):
        return head, last
    if is_known_model(rest):
        return rest, ""
    first, others = rest.split("-", 1)
    return first, others


def _from_tag(tag, method, values):
    model, weights, modes, seed = read_model_tag(tag)
    return OutputId(model, method, weights, values, modes, seed)


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
