"""The one grid planner: models x methods x settings x modes, expanded into run values
(labench.spec.run.Run), each cell with its label, its two command lines and the stem of the scores it
writes. report.py plans its runs here (in-process); para_explore.sh is `python -m labench.flows.grid`:
its options in, every cell run as subprocesses (generate_attributions.py, then eval.py) with one
log each, a summary out.

A cell whose scores file exists is done: only its results.csv row is refreshed (eval.py reads the
scores, no model). A failing cell does not stop the grid. Exit status: 0 if no cell failed, 1 if
one did, 2 on a usage error, 130 when interrupted."""
from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from saliency import PAPER_ORDER, SaliencyError, get_method

from ..errors import UserError
from ..nets.models import DEFAULT_MODEL, PAPER_MODELS
from ..spec.identity import FLAG_MODE_NAMES, PARAM_SYMBOLS
from ..spec.run import Run
from .cli import attribution_argv, eval_argv, eval_output_id

ROOT = Path(__file__).resolve().parents[2]
PROG = "para_explore.sh"
# docs/PROTOCOL.md "The paper's grid": LA over spatial_range x max_iter x sampling_times
PAPER_SETTINGS = {"spatial_range": (10, 20, 30), "max_iter": (10, 20, 30), "sampling_times": (10, 20, 30)}
SETTING_OPTIONS = {"spatial_ranges": "spatial_range", "max_iters": "max_iter", "sampling_times": "sampling_times"}


# ---------------------------------------------------------------- the plan


def settings_of(method: str, settings: dict) -> list:
    """Every setting of the method's file parameters the grid asks for: the product of the values
    `settings` gives each parameter (the default for the others); [{}] for a method without file
    parameters or one the registry does not know (its cell runs and fails in its own log)."""
    try:
        entry = get_method(method)
    except SaliencyError:
        return [{}]
    defaults = dict(zip(entry.file_params, entry.file_setting()))
    axes = [[(p, v) for v in settings.get(p, (defaults[p],))] for p in entry.file_params]
    return [dict(combination) for combination in itertools.product(*axes)]


def expand(models, methods, settings=None, modes=((),), base: Run = Run()) -> list:
    """The run values of models x methods x settings x modes, in that nesting order. models:
    (model, weights) pairs; settings: {file parameter: values}; modes: mode sets; base: the
    fields every run shares (data, limit, device, outputs...)."""
    return [replace(base, model=model, weights=weights, method=method, params=setting, modes=base.modes + tuple(mode_set))
            for model, weights in models for method in methods
            for setting in settings_of(method, settings or {}) for mode_set in modes]


def label(run: Run) -> str:
    """How the grid names a cell: 'resnet50-random la r=20 T=20 S=20'."""
    model = run.model if run.weights == "default" else f"{run.model}-{run.weights}"
    return " ".join([model, run.method, *(f"{PARAM_SYMBOLS.get(p, p)}={v}" for p, v in run.params)])


@dataclass(frozen=True)
class Cell:
    run: Run
    gen_args: tuple  # generate_attributions.py's arguments (the run's, then the pass-through extras)
    eval_args: tuple  # eval.py's
    stem: str  # the stem of the scores eval.py writes: its parser reads eval_args, extras included

    @property
    def label(self) -> str:
        return label(self.run)

    @property
    def scores_file(self) -> str:
        return os.path.join(self.run.scores_dir, f"{self.stem}_scores.npz")


def cell_of(run: Run, gen_extra=(), eval_extra=()) -> Cell:
    eval_args = (*eval_argv(run), *eval_extra)
    return Cell(run, (*attribution_argv(run), *gen_extra), eval_args, scores_stem(run, eval_args))


def scores_stem(run: Run, eval_args) -> str:
    """What eval.py with these arguments writes; a cell that names no output (an unknown method)
    is named model[-weights]_method."""
    try:
        return eval_output_id(eval_args).stem
    except (UserError, SaliencyError):
        return f"{run.model}{'' if run.weights == 'default' else '-' + run.weights}_{run.method}"


# ---------------------------------------------------------------- para_explore.sh's options


@dataclass(frozen=True)
class Option:
    name: str  # --name (with '_'); '-' is accepted in its place
    aliases: tuple = ()
    takes_value: bool = True


def options_table() -> tuple:
    """Every option of the grid; one flag per flag mode (labench.spec.identity), passed to both scripts."""
    return (
        Option("models", ("model",)), Option("paper", takes_value=False), Option("methods", ("method", "attr_method")),
        Option("spatial_ranges", ("spatial_range",)), Option("max_iters", ("max_iter",)),
        Option("sampling_times", ("sampling_time", "samples_number")),
        Option("data_dir"), Option("limit", ("images",)), Option("weights"), Option("device"),
        *(Option(name, takes_value=False) for name in FLAG_MODE_NAMES),
        Option("attr_prefix", ("maps_dir",)), Option("scores_prefix", ("prefix", "scores_dir")), Option("csv_path", ("csv",)), Option("log_dir"),
        Option("python"), Option("launcher"), Option("gen_args"), Option("eval_args"),
        Option("dry_run", takes_value=False), Option("help", ("h",), takes_value=False),
    )


class Usage(Exception):
    """A usage error: one line, then a pointer to --help; exit status 2."""


@dataclass(frozen=True)
class GridOptions:
    models: tuple = ((DEFAULT_MODEL, "default"),)  # the offline model; --paper: the paper's four
    methods: tuple = tuple(PAPER_ORDER)
    settings: dict = field(default_factory=lambda: dict(PAPER_SETTINGS))
    base: Run = Run()  # data, limit, device, modes and outputs of every cell
    log_dir: str = "logs/grid"
    python: str = ""
    launcher: tuple = ()
    gen_args: tuple = ()
    eval_args: tuple = ()
    dry_run: bool = False

    def runner(self) -> list:
        """The words before a script's path: the interpreter, or the launcher (a leading 'torchrun'
        becomes `PY -m torch.distributed.run` so that the ranks use the same interpreter)."""
        if not self.launcher:
            return [self.python]
        if self.launcher[0] == "torchrun":
            return [self.python, "-m", "torch.distributed.run", *self.launcher[1:]]
        return list(self.launcher)

    def cells(self) -> list:
        runs = expand(self.models, self.methods, self.settings, base=self.base)
        return [cell_of(run, self.gen_args, self.eval_args) for run in runs]


def words(text: str) -> list:
    """A list option's words: commas and blanks separate."""
    return [w for w in re.split(r"[,\s]+", text) if w]


def whole_numbers(text: str) -> tuple:
    values = words(text)
    for value in values:
        if not value.isdigit():
            raise Usage(f"'{value}' is not a whole number (LA values and --limit)")
    return tuple(int(v) for v in values)


def read_argv(argv) -> dict:
    """{option name: value (True for a flag)} of the command line, or 'help'."""
    by_name = {f"--{a}": option for option in options_table() for a in (option.name, *option.aliases)}
    by_name["-h"] = by_name.pop("--h")
    given, argv = {}, list(argv)
    while argv:
        word = argv.pop(0)
        name, has_value, value = word.partition("=") if word.startswith("--") else (word, "", "")
        option = by_name.get("--" + name[2:].replace("-", "_") if name.startswith("--") else name)
        if option is None:
            raise Usage(f"unknown option {word}")
        if option.name == "help":
            return {"help": True}
        if not option.takes_value:
            given[option.name] = True
            continue
        if not has_value:
            if not argv:
                raise Usage(f"option {word} needs a value")
            value = argv.pop(0)
        given[option.name] = value
    return given


def model_specs(names, weights) -> tuple:
    """(model, weights) of each NAME or NAME:WEIGHTS."""
    specs = []
    for spec in names:
        model, _, own = spec.partition(":")
        if not model or (":" in spec and not own):
            raise Usage(f"bad model '{spec}' (NAME or NAME:WEIGHTS)")
        specs.append((model, own or weights))
    return tuple(specs)


def grid_options(argv) -> GridOptions | None:
    """The options of a command line (None: --help was asked)."""
    given = read_argv(argv)
    if "help" in given:
        return None
    defaults = GridOptions()
    if "paper" in given and "models" in given:
        raise Usage("--paper runs the paper's four models: drop --models, or --paper")
    models = words(given["models"]) if "models" in given else PAPER_MODELS if "paper" in given else \
        [m for m, _ in defaults.models]
    methods = tuple(words(given["methods"])) if "methods" in given else defaults.methods
    if not models:
        raise Usage("--models is empty")
    if not methods:
        raise Usage("--methods is empty")
    settings = {**defaults.settings, **{param: whole_numbers(given[option])
                                        for option, param in SETTING_OPTIONS.items() if option in given}}
    limit = whole_numbers(given["limit"]) if "limit" in given else ()
    if len(limit) > 1:
        raise Usage(f"'{given['limit']}' is not a whole number (LA values and --limit)")
    base = Run(data_dir=given.get("data_dir") or Run.data_dir, limit=limit[0] if limit else None,
               device=given.get("device") or Run.device, modes=tuple(m for m in FLAG_MODE_NAMES if m in given),
               maps_dir=given.get("attr_prefix", Run.maps_dir), scores_dir=given.get("scores_prefix", Run.scores_dir),
               csv_path=given.get("csv_path", Run.csv_path))
    venv = ROOT / ".venv" / "bin" / "python"
    return GridOptions(models=model_specs(models, given.get("weights") or "default"), methods=methods,
                       settings=settings, base=base, log_dir=given.get("log_dir", defaults.log_dir),
                       python=given.get("python") or (str(venv) if os.access(venv, os.X_OK) else "python3"),
                       launcher=tuple(given.get("launcher", "").split()), gen_args=tuple(words(given.get("gen_args", ""))),
                       eval_args=tuple(words(given.get("eval_args", ""))), dry_run="dry_run" in given)


def _wrapped(text: str) -> str:
    """Help text continued under its column."""
    return textwrap.fill(text, width=94, initial_indent=" " * 25, subsequent_indent=" " * 25).lstrip()


def usage() -> str:
    spaced = " ".join
    mode_flags = ", ".join(f"--{m}" for m in FLAG_MODE_NAMES if m != "published")
    return f"""Usage: {PROG} [options]

Runs the paper's grid: for every model and method, generate_attributions.py then eval.py;
LA once for every (spatial_range, max_iter, sampling_times). A cell whose scores file already
exists is skipped as done (only its results.csv row is refreshed, which needs no model), so
resuming after a crash is rerunning the same command; a cell that was cut off half way resumes
from its saved chunks. A failing cell does not stop the grid. At the end a summary lists what
ran, what was skipped and what failed (with its log file). Exit status: 0 if no cell failed,
1 if any did, 2 on a usage error. The planner is labench.flows.grid (`python -m labench.flows.grid`).

Grid (lists are space- or comma-separated; defaults are the published grid on the offline model):
  --models LIST          models; NAME:WEIGHTS gives one model its own weights
                         (default: {DEFAULT_MODEL}, whose weights ship with its package)
  --paper                the paper's four models: {spaced(PAPER_MODELS)} (their
                         weights are downloaded once)
  --methods LIST         {_wrapped(f"methods (default: the registry's, {spaced(PAPER_ORDER)}); your own as file.py:function")}
  --spatial_ranges LIST  LA spatial_range values (default: {spaced(map(str, PAPER_SETTINGS['spatial_range']))})
  --max_iters LIST       LA max_iter values (default: {spaced(map(str, PAPER_SETTINGS['max_iter']))})
  --sampling_times LIST  LA sampling_times values (default: {spaced(map(str, PAPER_SETTINGS['sampling_times']))}); \
passed to both scripts

Passed to both scripts:
  --data_dir DIR         folder with img_batch.pt and label_batch.pt (scripts' default: data)
  --limit N, --images N  only the first N images
  --weights W            default | a torchvision weights name | random (file names and CSV
                         rows then carry the model as MODEL-W, e.g. resnet50-random)
  --device D             cpu, cuda, cuda:N or auto (scripts' default: auto)
  --published            what the published scripts computed (docs/PROTOCOL.md "As published"): la, agi,
                         deeplift and eg couple the images of each group, the metric orders ties
                         as NumPy did; outputs are tagged MODEL-published (to check the paper's
                         table; the default is the fair comparison of methods)
  {mode_flags}
                         the scripts' other opt-in modes (labench.spec.identity), tagged alike

Outputs:
  --maps_dir DIR         attribution maps (default: attributions; also --attr_prefix)
  --scores_dir DIR       scores .npz files (default: scores; also --scores_prefix)
  --csv_path FILE        results table (default: results.csv)
  --log_dir DIR          one log per cell, <stem>.log, and summary.txt (default: logs/grid)

How to run:
  --python PY            interpreter (default: {ROOT}/.venv/bin/python if present, else python3)
  --launcher "CMD"       what runs each script instead of the interpreter, e.g.
                         "torchrun --nproc_per_node=4"; a leading word 'torchrun' becomes
                         "PY -m torch.distributed.run" so the ranks use the same interpreter
  --gen_args "ARGS"      extra arguments for generate_attributions.py (e.g. "--batch_size 8")
  --eval_args "ARGS"     extra arguments for eval.py (e.g. "--batch_size 50")
  --dry-run              print the plan (every command) and run nothing
  -h, --help             this text

Option names take '-' or '_' alike (--dry_run, --max-iters); --spatial_range, --max_iter and
--model/--method are accepted for the plural forms.

Examples:
  {PROG}                                                   # the published grid on the offline model
  {PROG} --paper                                           # the paper's grid: its four models
  {PROG} --models resnet50 --methods "sm ig la" --spatial_ranges 20 --limit 100
  {PROG} --dry-run --models vgg16 --methods la
  {PROG} --published --models resnet50                     # the paper's computation, tagged -published
  {PROG} --launcher "torchrun --nproc_per_node=4"          # every step on 4 GPUs
"""


# ---------------------------------------------------------------- running


def script(name) -> str:
    return str(ROOT / name)


def commands(options: GridOptions, cell: Cell) -> dict:
    """The cell's command lines: gen and eval (through the runner), and refresh (a done cell's row:
    eval.py reads the scores, no model, no launcher)."""
    return {"gen": [*options.runner(), script("generate_attributions.py"), *cell.gen_args],
            "eval": [*options.runner(), script("eval.py"), *cell.eval_args],
            "refresh": [options.python, script("eval.py"), *cell.eval_args]}


def print_plan(options: GridOptions, cells):
    s = options.settings
    print(f"# {PROG} plan: {len(cells)} cells ({len(options.models)} models; methods: {' '.join(options.methods)}; "
          "LA: " + " x ".join(f"{p} {{{' '.join(map(str, s[p]))}}}" for p in SETTING_OPTIONS.values()) + ")")
    print(f"# run in: {os.getcwd()}; logs: {options.log_dir}/<stem>.log")
    for i, cell in enumerate(cells, 1):
        command = commands(options, cell)
        if os.path.exists(cell.scores_file):
            print(f"# [{i}/{len(cells)}] {cell.label}: done ({cell.scores_file} exists), skipped; its row is refreshed:")
            print(shlex.join(command["refresh"]))
        else:
            print(f"# [{i}/{len(cells)}] {cell.label} -> {cell.scores_file}")
            print(shlex.join(command["gen"]))
            print(shlex.join(command["eval"]))


def run_step(log: str, command) -> int:
    """Append the command and its output to the log; its exit status. Interrupted, the step is
    asked to end (the scripts keep their finished chunks) and waited for."""
    with open(log, "a") as out:
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
        out.flush()
        step = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            return step.wait()
        except KeyboardInterrupt:
            step.terminate()
            step.wait()
            raise


def first_error(log: str, offset: int) -> str:
    """The first one-line error the scripts printed ('error: ...') after offset."""
    with open(log, errors="replace") as f:
        f.seek(offset)
        return next((line.rstrip("\n") for line in f if line.startswith("error:")), "")


@dataclass
class Outcome:
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def run_cell(options: GridOptions, cell: Cell, outcome: Outcome, position: str):
    command = commands(options, cell)
    log = os.path.join(options.log_dir, f"{cell.stem}.log")
    start = time.monotonic()
    if os.path.exists(cell.scores_file):
        if run_step(log, command["refresh"]) == 0:
            outcome.skipped.append(cell.label)
            print(f"{position} {cell.label}: skipped (done)", flush=True)
        else:
            outcome.failed.append(f"{cell.label} (refreshing the results.csv row failed; log: {log})")
            print(f"{position} {cell.label}: FAILED refreshing its row, see {log}", flush=True)
        return
    print(f"{position} {cell.label} ...", flush=True)
    offset = os.path.getsize(log) if os.path.exists(log) else 0
    for step, name in (("gen", "generate_attributions.py"), ("eval", "eval.py")):
        status = run_step(log, command[step])
        if status != 0:
            why = first_error(log, offset)
            outcome.failed.append(f"{cell.label} ({name} exit {status}{': ' + why if why else ''}; log: {log})")
            print(f"{position} {cell.label}: FAILED in {name} (exit {status}), see {log}", flush=True)
            return
    seconds = int(time.monotonic() - start)
    outcome.ran.append(f"{cell.label} ({seconds} s)")
    print(f"{position} {cell.label}: done in {seconds} s", flush=True)


def summary(options: GridOptions, cells, outcome: Outcome, seconds: int):
    lines = ["", f"== {PROG} summary: {len(cells)} cells: {len(outcome.ran)} ran, {len(outcome.skipped)} skipped "
                 f"(done), {len(outcome.failed)} failed ({seconds} s) =="]
    lines += [f"ran:     {x}" for x in outcome.ran] + [f"skipped: {x}" for x in outcome.skipped]
    lines += [f"FAILED:  {x}" for x in outcome.failed]
    text = "\n".join(lines) + "\n"
    print(text, end="", flush=True)
    Path(options.log_dir, "summary.txt").write_text(text)


def run_grid(options: GridOptions, cells) -> int:
    try:
        os.makedirs(options.log_dir, exist_ok=True)
    except OSError:
        raise Usage(f"cannot create --log_dir {options.log_dir}") from None
    outcome, start, current = Outcome(), time.monotonic(), None

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        for i, cell in enumerate(cells, 1):
            current = cell
            run_cell(options, cell, outcome, f"[{i}/{len(cells)}]")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        outcome.failed.append(f"interrupted during cell {current.label if current else ''}")
        summary(options, cells, outcome, int(time.monotonic() - start))
        return 130
    summary(options, cells, outcome, int(time.monotonic() - start))
    return 0 if not outcome.failed else 1


def main(argv=None) -> int:
    try:
        options = grid_options(sys.argv[1:] if argv is None else argv)
        if options is None:
            print(usage(), end="")
            return 0
        cells = options.cells()
        if options.dry_run:
            print_plan(options, cells)
            return 0
        runner = options.runner()[0]
        if shutil.which(runner) is None:
            raise Usage(f"cannot run '{runner}' (see --python / --launcher)")
        return run_grid(options, cells)
    except Usage as err:
        print(f"{PROG}: {err}\nTry '{PROG} --help'.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
