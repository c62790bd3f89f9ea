"""What the scripts share: their arguments, read once into the run value (labench.spec.run.Run) that
the logic takes, and the command line of a run value (the grid's commands). The run's set-up
(checks, data, model) is labench.setup's."""
from __future__ import annotations

import argparse

from saliency import SaliencyError, get_method
from saliency.metric import default_batch_size as metric_batch_size
from saliency.saliency_zoo import PAPER_ORDER

from ..compute.setup import CPU_BATCH, output_id
from ..errors import UserError
from ..nets.runtime import RUNTIMES
from ..spec.identity import FLAG_MODE_NAMES, LEAD, METRIC_OPTIONS, declaration, metric_mode, metric_values
from ..spec.run import Run

DEFAULT = Run()  # the default of every flag that sets a field of the run
LA_DEFAULTS = get_method(LEAD).defaults  # the flags of LA's file parameters default to its declaration
SEEDED_METHODS = [m for m in PAPER_ORDER if get_method(m).seeded]  # maps that depend on --seed
# the flag of each method file parameter: the parsers map flags to Run.params here, and only here
PARAM_FLAGS = {param: f"--{param}" for param in get_method(LEAD).file_params}
METRIC_HELP = {
    "substrate": "opt-in metric variant (docs/PROTOCOL.md 'Metric variants'): what deleted values become and insertion starts "
                 "from; blur is RISE's insertion substrate. Tagged -substrate_<name>",
    "order": "opt-in metric variant: channel ranks every C x H x W value (the paper's); pixel ranks whole pixels by "
             "the sum of their channels (most peers). Tagged -order_pixel",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every script's help: the description as written, and each option's default after its text
    (argparse's own value, so the help cannot drift from the code) unless the text says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        says_it = "(default" in text or "default:" in text
        if says_it or action.default is None or action.default is argparse.SUPPRESS or action.nargs == 0:
            return text  # flags (store_true/false) default to off; None is "the job's own choice", said in the text
        return f"{text} (default: %(default)s)"


class RunParser(argparse.ArgumentParser):
    """A script's argument parser whose parse_args gives the run value, never a Namespace;
    to_run({dest: value}) is the one place that reads the parsed flags."""

    def __init__(self, to_run, description=None):
        super().__init__(description=description, formatter_class=HelpFormatter)
        self.to_run = to_run

    def parse_args(self, args=None, namespace=None) -> Run:
        return self.to_run(vars(super().parse_args(args, namespace)))


def add_common_arguments(parser):
    """Flags shared by generate_attributions.py and eval.py, with a flag --<name> per flag mode."""
    parser.add_argument("--model", default=DEFAULT.model,
                        help="model name (efficientnet_lite0, the paper's four, any torchvision classifier or timm model)")
    parser.add_argument("--weights", default=DEFAULT.weights,
                        help="'default', a torchvision weights name, 'random', or a state-dict checkpoint file")
    parser.add_argument("--attr_method", default=DEFAULT.method,
                        help=f"one of {', '.join(PAPER_ORDER)}, or your own as file.py:function or module:function")
    parser.add_argument("--spatial_range", type=int, default=LA_DEFAULTS["spatial_range"], help="LA: box half-width is x / spatial_range")
    parser.add_argument("--max_iter", type=int, default=LA_DEFAULTS["max_iter"], help="LA: steps per exploration")
    parser.add_argument("--seed", type=int, default=DEFAULT.seed,
                        help="seed of --weights random and of the methods' per-image random generators; named in "
                             "file names when not 0: random_seed<N> for random weights, else -seed<N> for the "
                             f"methods whose maps depend on it ({', '.join(SEEDED_METHODS)})")
    parser.add_argument("--data_dir", default=DEFAULT.data_dir, help="folder with img_batch.pt and label_batch.pt")
    parser.add_argument("--device", default=DEFAULT.device, help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--images", "--limit", dest="limit", type=int, default=None, metavar="N",
                        help="use only the first N images (--images in every script; --limit is the same)")
    for name in FLAG_MODE_NAMES:
        parser.add_argument(f"--{name}", action="store_true", help=declaration(name).help)


def attribution_parser(description=None):
    parser = RunParser(attribution_run, description)
    add_common_arguments(parser)
    parser.add_argument("--batch_size", type=int, default=None,
                        help=f"images per call (default: the method's published size, at least 8; at most {CPU_BATCH} "
                             "on a CPU)")
    parser.add_argument("--sampling_times", type=int, default=LA_DEFAULTS["sampling_times"], help="LA: explorations per image")
    parser.add_argument("--maps_dir", "--prefix", dest="prefix", default=DEFAULT.maps_dir, metavar="DIR",
                        help="folder of the maps (--prefix: the published name)")
    parser.add_argument("--max_rows", type=int, default=None,
                        help="rows (image x step/sample) per model call inside a method (default: on CUDA what fits "
                             "70%% of the free memory, measured; on a CPU the method's own)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="images per saved chunk, the unit of resume (default: whole batches, >= 16 images)")
    parser.add_argument("--group_size", type=int, default=None,
                        help="with --published: images per coupled group (default: the published size, "
                             "64 for la/agi, 4 for deeplift/eg, halved on maxvit_t except eg). For tests and "
                             "studies: the file name does not record it, so give such runs their own --prefix")
    return parser


def eval_parser(description=None):
    parser = RunParser(eval_run, description)
    add_common_arguments(parser)
    parser.add_argument("--batch_size", type=int, default=None,
                        help=f"perturbed images per forward pass (default: {metric_batch_size('cpu')} on a CPU; on a "
                             "GPU what fits 70%% of the free memory, in whole curves of 225)")
    parser.add_argument("--samples_number", "--sampling_times", dest="sampling_times", type=int,
                        default=LA_DEFAULTS["sampling_times"],
                        help="LA: explorations per image (names the attribution file)")
    parser.add_argument("--scores_dir", "--prefix", dest="prefix", default=DEFAULT.scores_dir, metavar="DIR",
                        help="folder of the scores .npz (--prefix: the published name)")
    parser.add_argument("--maps_dir", "--attr_prefix", dest="attr_prefix", default=DEFAULT.maps_dir, metavar="DIR",
                        help="folder of the maps .npy (--attr_prefix: the published name)")
    parser.add_argument("--maps", default=None, metavar="FILE.npy",
                        help="score maps computed elsewhere (captum, your own code): float [N,C,H,W] for the cached "
                             "images, named in files and rows by --attr_method, a name of your own")
    parser.add_argument("--csv_path", default=DEFAULT.csv_path, help="the results table the row goes into")
    parser.add_argument("--chunk", type=int, default=None, help="images per saved chunk (the unit of resume; default 10)")
    for option in METRIC_OPTIONS:
        values = metric_values(option)
        parser.add_argument(f"--{option}", choices=values, default=values[0],
                            help=METRIC_HELP.get(option, f"opt-in metric variant. Tagged -{option}_<value>"))
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="the metric's forward passes: auto = on a CPU OpenVINO, else ONNX Runtime, when "
                             "installed (converted once in float32 and checked against PyTorch's logits on the first "
                             "images; PyTorch with a note where not), PyTorch on a GPU and with --amp/--fast; torch = "
                             "PyTorch. Untagged: the same curves to float rounding (docs/PERFORMANCE.md)")
    return parser


def add_benchmark_arguments(parser, images: int, seed_help: str = "", several_models: bool = False):
    """The flags report.py and sanity.py share: the model (several: `--model a b`, also spelled
    `--models`), the data and its first N images, the methods, LA's setting, the seed and the device
    (read back by benchmark_fields)."""
    if several_models:
        parser.add_argument("--model", "--models", dest="models", nargs="+", default=[DEFAULT.model],
                            help="one model or several: the rows of the tables")
    else:
        parser.add_argument("--model", default=DEFAULT.model, help="the model")
    parser.add_argument("--weights", default=DEFAULT.weights, help="'default', 'random', a weights name or a checkpoint")
    parser.add_argument("--data_dir", default=DEFAULT.data_dir, help="folder with img_batch.pt and label_batch.pt")
    parser.add_argument("--images", type=int, default=images, help="the first N evaluation images")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"default: all twelve ({' '.join(PAPER_ORDER)}); add your own as file.py:function")
    for param, flag in PARAM_FLAGS.items():
        parser.add_argument(flag, type=int, default=LA_DEFAULTS[param], help=f"LA's {param}")
    parser.add_argument("--seed", type=int, default=DEFAULT.seed, help=seed_help or "seed of the per-image random draws")
    parser.add_argument("--device", default=DEFAULT.device, help="cpu, cuda, cuda:N or auto")


def benchmark_fields(flags, several_models: bool = False) -> dict:
    """The fields of a report's or the sanity checks' request that add_benchmark_arguments' flags give."""
    model = {"models": tuple(dict.fromkeys(flags.models))} if several_models else {"model": flags.model}
    return {**model, "weights": flags.weights, "data_dir": flags.data_dir, "images": flags.images,
            "methods": tuple(flags.methods or ()), "seed": flags.seed, "device": flags.device,
            "settings": tuple((param, getattr(flags, flag.removeprefix("--"))) for param, flag in PARAM_FLAGS.items())}


def checked_methods(names) -> list:
    """The methods named, once each in their order (none named: all twelve in the paper's order);
    an unknown name is a UserError."""
    methods = list(dict.fromkeys(names or PAPER_ORDER))
    for method in methods:
        try:
            get_method(method)
        except SaliencyError as err:
            raise UserError(str(err)) from None
    return methods


# ---------------------------------------------------------------- flags <-> the run value


def _common_fields(flags: dict) -> dict:
    """The run's fields from the flags both scripts take ({dest: value})."""
    return {"model": flags["model"], "weights": flags["weights"], "method": flags["attr_method"],
            "params": {param: flags[flag.removeprefix("--")] for param, flag in PARAM_FLAGS.items()},
            "modes": tuple(name for name in FLAG_MODE_NAMES if flags[name]), "data_dir": flags["data_dir"],
            "limit": flags["limit"], "device": flags["device"], "batch_size": flags["batch_size"], "seed": flags["seed"]}


def attribution_run(flags: dict) -> Run:
    return Run(**_common_fields(flags), chunk=flags["chunk"], max_rows=flags["max_rows"],
               group_size=flags["group_size"], maps_dir=flags["prefix"])


def eval_run(flags: dict) -> Run:
    fields = _common_fields(flags)
    variants = tuple(name for option in METRIC_OPTIONS for name in metric_mode(option, flags[option]))
    return Run(**{**fields, "modes": fields["modes"] + variants}, chunk=flags["chunk"], maps_dir=flags["attr_prefix"],
               scores_dir=flags["prefix"], csv_path=flags["csv_path"], maps_file=flags["maps"], runtime=flags["runtime"])


def _flags(triples) -> list:
    """The words `--flag value` of each (flag, value, default) whose value is not the default."""
    return [word for flag, value, default in triples if value != default for word in (flag, str(value))]


def _common_argv(run: Run) -> list:
    argv = ["--model", run.model, "--attr_method", run.method]
    argv += [word for param, value in run.params for word in (PARAM_FLAGS[param], str(value))]
    argv += _flags([("--weights", run.weights, DEFAULT.weights), ("--data_dir", run.data_dir, DEFAULT.data_dir),
                    ("--limit", run.limit, None), ("--device", run.device, DEFAULT.device),
                    ("--batch_size", run.batch_size, None), ("--seed", run.seed, DEFAULT.seed)])
    return argv + [f"--{name}" for name in run.modes if name in FLAG_MODE_NAMES]


def attribution_argv(run: Run) -> list:
    """generate_attributions.py's arguments for `run` (attribution_parser reads them back as `run`)."""
    return _common_argv(run) + ["--prefix", run.maps_dir] + _flags(
        [("--chunk", run.chunk, None), ("--max_rows", run.max_rows, None),
         ("--group_size", run.group_size, None)])


def eval_argv(run: Run) -> list:
    """eval.py's arguments for `run` (eval_parser reads them back as `run` where its max_rows and
    group_size are the defaults: eval.py has no flags for them)."""
    options = run.metric_options
    variants = _flags([(f"--{option}", options[option], values[0]) for option, values in METRIC_OPTIONS.items()])
    outputs = ["--attr_prefix", run.maps_dir, "--prefix", run.scores_dir, "--csv_path", run.csv_path]
    return _common_argv(run) + variants + outputs + _flags([("--chunk", run.chunk, None),
                                                            ("--runtime", run.runtime, DEFAULT.runtime),
                                                            ("--maps", run.maps_file, None)])


def eval_output_id(argv):
    """The identity of the scores eval.py writes with these arguments (flags it does not know
    are left out; an unknown method is a UserError)."""
    parser = eval_parser()
    flags, _ = parser.parse_known_args(list(argv))
    return output_id(parser.to_run(vars(flags)))
