"""The run value (labench.spec.run.Run), the modes declared once (labench.spec.identity), model names with
'-', and the one grid planner (labench.flows.grid) behind report.py and para_explore.sh."""
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from labench.flows import cli, grid
from labench.spec import identity
from labench.nets import models
from labench.compute import scoring, setup
from labench.present import tables
from saliency.metric import INSERTION
from labench.errors import UserError
from labench.spec.identity import OutputId
from labench.spec.run import Run
from saliency import PAPER_ORDER

LA_PARAMS = {"spatial_range": 10, "max_iter": 5, "sampling_times": 3}


# ---------------------------------------------------------------- the run value


@pytest.mark.parametrize("run", [
    Run(),
    Run(model="resnet50", weights="random", method="la", params=LA_PARAMS, modes=("published", "amp"),
        data_dir="my data", limit=3, device="cpu", batch_size=8, seed=4, chunk=2, max_rows=100, group_size=2,
        maps_dir="out/maps"),
    Run(method="sm", modes=("fast", "channels_last"), weights="ckpt/net.pt"),
])
def test_generate_attributions_command_line_reads_back_as_the_run(run):
    argv = cli.attribution_argv(run)
    assert cli.attribution_parser().parse_args(argv) == run


@pytest.mark.parametrize("run", [
    Run(),
    Run(model="vgg16", weights="random", method="la", params=LA_PARAMS, modes=("order_pixel", "substrate_mean", "amp"),
        limit=5, device="cpu", batch_size=450, chunk=3, maps_dir="a", scores_dir="s", csv_path="r.csv"),
    Run(method="eg", modes=("published",)),
])
def test_eval_command_line_reads_back_as_the_run(run):
    assert cli.eval_parser().parse_args(cli.eval_argv(run)) == run


def test_the_run_fills_its_method_parameters_and_orders_its_modes():
    la = Run(method="la", params={"max_iter": 5}, modes=["substrate_blur", "published"])
    assert la.method_params == {"spatial_range": 20, "max_iter": 5, "sampling_times": 20}
    assert la.modes == ("published", "substrate_blur") and la.published and not la.amp
    assert la.metric_options == {"substrate": "blur", "order": "channel"}
    assert scoring.metric_options(la) == {"ties": "numpy", "substrate": "blur", "order": "channel"}
    assert la.output_id.stem == "efficientnet_lite0-published-substrate_blur_la_spatial-range-20_max-iter-5_sampling-times-20"
    assert Run(method="sm", params=LA_PARAMS).params == ()  # sm has no file parameters
    with pytest.raises(UserError, match="unknown mode"):
        Run(modes=("turbo",))
    with pytest.raises(UserError, match="one metric option twice"):
        Run(modes=("substrate_blur", "substrate_mean"))
    # the parser maps each flag to its field once: eval.py's --samples_number is sampling_times
    run = cli.eval_parser().parse_args(["--samples_number", "7", "--attr_prefix", "m", "--prefix", "s"])
    assert run.method_params["sampling_times"] == 7 and (run.maps_dir, run.scores_dir) == ("m", "s")


def test_errors_name_the_flags_of_the_run_fields():
    with pytest.raises(UserError, match="--chunk must be at least 1"):
        setup.check_arguments(Run(method="sm", chunk=0))
    with pytest.raises(UserError, match="pass a valid --max_iter"):
        setup.check_arguments(Run(method="la", params={"max_iter": 0}))


# ---------------------------------------------------------------- model names with '-'


@pytest.fixture
def dashed_model(monkeypatch):
    """A model known to labench whose name holds '-' (as a hub-style timm name may)."""
    monkeypatch.setitem(models.MODELS, "hf-hub-like-name", models.MODELS["efficientnet_lite0"])
    return "hf-hub-like-name"


@pytest.mark.parametrize("weights, modes, tag", [
    ("", (), "hf-hub-like-name"),
    ("random", (), "hf-hub-like-name-random"),
    ("my_ckpt.v2", ("amp", "substrate_blur"), "hf-hub-like-name-my_ckpt.v2-amp-substrate_blur"),
])
def test_a_model_name_with_dashes_round_trips(dashed_model, weights, modes, tag):
    for method, params in (("sm", None), ("la", LA_PARAMS)):
        out = OutputId.make(dashed_model, method, weights, params, modes)
        assert out.model_tag == tag
        assert OutputId.parse(out.scores_file) == out and OutputId.parse(out.maps_file) == out.maps()
        row = {k: str(v) for k, v in {**out.csv_key(), "insertion": 0.5, "deletion": 0.1}.items()}
        assert OutputId.from_csv_row(row) == out


def test_the_scripts_take_a_model_name_with_dashes(dashed_model):
    run = cli.eval_parser().parse_args(["--model", dashed_model, "--weights", "random", "--amp", "--attr_method", "sm"])
    assert setup.output_id(run).scores_file == "hf-hub-like-name-random-amp_sm_scores.npz"
    assert models.resolve_builder(dashed_model) is models.MODELS["efficientnet_lite0"]


def insertion_table(folder, rows):
    """The main insertion table of a results.csv holding `rows` (model tag, insertion) of sm."""
    path = folder / "results.csv"
    path.write_text("model,attr_method,spatial_range,max-iter,samples_number,insertion,deletion\n"
                    + "".join(f"{tag},sm,-,-,-,{value},0.1\n" for tag, value in rows))
    return tables.main_tables(tables.load_results(path))[0][INSERTION]


def test_tables_group_a_dashed_model_by_its_name(dashed_model, tmp_path):
    ins = insertion_table(tmp_path, [("zz_net-random", 0.1), ("hf-hub-like-name-random", 0.3), ("vgg16", 0.2),
                                     ("hf-hub-like-name", 0.4)])
    # the paper's models first, then the others in order of appearance, one model's tags side by side
    assert list(ins.index) == ["vgg16", "zz_net-random", "hf-hub-like-name", "hf-hub-like-name-random"]


def test_names_that_would_read_back_as_another_model_are_refused(dashed_model):
    with pytest.raises(UserError, match="cannot name files"):
        OutputId.make("resnet50-random", "sm")  # reads back as resnet50 with random weights
    with pytest.raises(UserError, match="cannot name files"):
        OutputId.make("not_known-net", "sm")  # an unknown model splits at its first '-'
    with pytest.raises(UserError, match="cannot name files"):
        OutputId.make("resnet50", "sm", "amp")  # weights that read as a mode
    # a name this installation does not know keeps the rule it always had
    assert identity.parse_model_tag("m-random-amp") == ("m", "random", ("amp",))


# ---------------------------------------------------------------- a mode is one declaration


@pytest.fixture
def declared(monkeypatch):
    """A flag mode and a metric variant, each declared once (register_mode), nothing else edited."""
    monkeypatch.setattr(identity, "MODE_REGISTRY", dict(identity.MODE_REGISTRY))
    identity.register_mode(identity.Mode("testmode", "a test mode", changes_maps=False))
    identity.register_mode(identity.metric_variant("substrate", "white"))
    return "testmode", "substrate_white"


def test_a_declared_mode_names_files_and_rows(declared):
    out = OutputId.make("resnet50", "la", "random", LA_PARAMS, ("substrate_white", "testmode", "amp"))
    assert out.stem == "resnet50-random-amp-testmode-substrate_white_la_spatial-range-10_max-iter-5_sampling-times-3"
    assert out.maps().stem == "resnet50-random_la_spatial-range-10_max-iter-5_sampling-times-3"  # la: fp32 maps
    assert OutputId.parse(out.scores_file) == out
    row = {k: str(v) for k, v in out.csv_key().items()}
    assert row["model"] == "resnet50-random-amp-testmode-substrate_white" and OutputId.from_csv_row(row) == out
    # fields, not strings: the protocol and the modes a table or statistic groups by
    assert out.protocol == "substrate_white" and out.metric_options == {"substrate": "white", "order": "channel"}
    assert out.without_metric_variants().model_tag == "resnet50-random-amp-testmode"
    assert [m.name for m in out.mode_declarations] == ["amp", "testmode", "substrate_white"]
    assert "substrate_white" in identity.METRIC_MODES and "testmode" not in identity.METRIC_MODES


def test_a_declared_mode_reaches_the_flags_the_grid_and_the_report(declared):
    gen = cli.attribution_parser().parse_args(["--testmode", "--attr_method", "sm"])
    assert gen.modes == ("testmode",) and setup.output_id(gen).maps_file == "efficientnet_lite0_sm_attributions.npy"
    ev = cli.eval_parser().parse_args(["--testmode", "--attr_method", "sm", "--substrate", "white"])
    assert setup.output_id(ev).stem == "efficientnet_lite0-testmode-substrate_white_sm"
    assert scoring.metric_options(ev)["substrate"] == "white"
    assert cli.eval_parser().parse_args(cli.eval_argv(ev)) == ev
    assert identity.metric_variants()["white"] == "substrate_white"  # report.py --variants white
    options = grid.grid_options(["--testmode", "--models", "resnet50", "--methods", "sm", "--eval_args",
                                 "--substrate white"])
    (cell,) = options.cells()
    assert "--testmode" in cell.gen_args and cell.stem == "resnet50-testmode-substrate_white_sm"


def test_a_declared_mode_gets_its_own_rows_in_the_tables(declared, tmp_path):
    ins = insertion_table(tmp_path, [("resnet50-substrate_white", 0.1), ("resnet50", 0.2), ("resnet50-testmode", 0.3)])
    assert list(ins.index) == ["resnet50", "resnet50-substrate_white", "resnet50-testmode"]
    assert ins.loc["resnet50-testmode", "sm"] == 0.3 and ins.loc["resnet50-substrate_white", "sm"] == 0.1


# ---------------------------------------------------------------- the one planner


def test_expand_is_models_x_methods_x_settings_x_modes():
    base = Run(limit=2, device="cpu", scores_dir="s")
    runs = grid.expand([("resnet50", "default"), ("vgg16", "random")], ["sm", "la", "nosuch"],
                       {"spatial_range": (10, 30), "max_iter": (5,)}, modes=((), ("substrate_blur",)), base=base)
    assert len(runs) == 2 * (1 + 2 + 1) * 2
    assert [grid.label(r) for r in runs[:6]] == ["resnet50 sm", "resnet50 sm", "resnet50 la r=10 T=5 S=20",
                                                 "resnet50 la r=10 T=5 S=20", "resnet50 la r=30 T=5 S=20",
                                                 "resnet50 la r=30 T=5 S=20"]
    assert runs[1].modes == ("substrate_blur",) and runs[-1].model == "vgg16" and runs[-1].weights == "random"
    assert all(r.limit == 2 and r.device == "cpu" and r.scores_dir == "s" for r in runs)
    nosuch = grid.cell_of(runs[-1])
    assert nosuch.stem == "vgg16-random_nosuch" and "--spatial_range" not in nosuch.gen_args


def test_grid_options_and_runner():
    options = grid.grid_options(["--models", "resnet50:random,vgg16", "--weights", "IMAGENET1K_V2", "--max-iters=5",
                                 "--method", "la", "--published", "--python", "/p/py", "--launcher", "torchrun --n=2",
                                 "--scores_prefix", "sc", "--dry-run"])
    assert options.models == (("resnet50", "random"), ("vgg16", "IMAGENET1K_V2")) and options.dry_run
    assert options.settings == {"spatial_range": (10, 20, 30), "max_iter": (5,), "sampling_times": (10, 20, 30)}
    assert options.runner() == ["/p/py", "-m", "torch.distributed.run", "--n=2"]
    assert dataclasses.replace(options, launcher=("srun", "-n", "2")).runner() == ["srun", "-n", "2"]
    cells = options.cells()
    assert len(cells) == 2 * 9 and all(c.run.published and c.run.scores_dir == "sc" for c in cells)
    assert cells[0].scores_file == "sc/resnet50-random-published_la_spatial-range-10_max-iter-5_sampling-times-10_scores.npz"
    assert grid.grid_options(["-h"]) is None
    for argv, message in [(["--models", ""], "--models is empty"), (["--limit", "x"], "not a whole number"),
                          (["--models", ":w"], "bad model"), (["--bogus"], "unknown option"), (["--limit"], "needs")]:
        with pytest.raises(grid.Usage, match=message):
            grid.grid_options(argv)


def test_para_explore_holds_no_list_of_its_own():
    text = (ROOT / "para_explore.sh").read_text()
    words = set(re.findall(r"[A-Za-z0-9_]+", text))
    assert [name for name in [*PAPER_ORDER, *models.PAPER_MODELS] if name in words] == []
    assert "labench.flows.grid" in text
    assert len(text.splitlines()) < 40


def test_an_interrupted_grid_ends_its_step_and_says_how_to_resume(tmp_path):
    """SIGTERM: the running step is asked to end, the summary names the cell, exit status 130."""
    slow = tmp_path / "slow_python"
    slow.write_text("#!/bin/sh\necho started\nexec sleep 60\n")
    slow.chmod(0o755)
    command = [sys.executable, "-m", "labench.flows.grid", "--python", str(slow), "--models", "resnet50", "--methods", "sm"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    log = tmp_path / "logs" / "grid" / "resnet50_sm.log"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and "started" in log.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted; rerun the same command to resume" in err
    assert "FAILED:  interrupted during cell resnet50 sm" in (tmp_path / "logs" / "grid" / "summary.txt").read_text()
