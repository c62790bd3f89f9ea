"""para_explore.sh (the grid: plan, run, resume, failures) and tables.py (the paper's tables)."""
import csv
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT, make_images
from saliency.metric import DELETION, INSERTION

SCRIPT = ROOT / "para_explore.sh"


def grid(*args, cwd, timeout=300, env=None):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def plan_commands(stdout):
    """The commands of a dry run, each as a list of words."""
    return [shlex.split(line) for line in stdout.splitlines() if line.strip() and not line.startswith("#")]


def option(words, name):
    return words[words.index(name) + 1]


# ---------------------------------------------------------------- the plan


def test_dry_run_default_is_the_published_grid_on_the_offline_model_and_paper_its_four_models(tmp_path):
    default = plan_commands(grid("--dry-run", cwd=tmp_path).stdout)
    assert len(default) == 2 * (11 + 27) and {option(c, "--model") for c in default} == {"efficientnet_lite0"}
    done = grid("--dry-run", "--paper", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = plan_commands(done.stdout)
    # 4 models x (11 methods + 27 LA settings), two commands each
    assert len(commands) == 2 * 4 * (11 + 27)
    assert not list(tmp_path.iterdir()), "a dry run writes nothing"
    models = {option(c, "--model") for c in commands}
    assert models == {"inception_v3", "resnet50", "vgg16", "maxvit_t"}
    assert grid("--paper", "--models", "vgg16", cwd=tmp_path).returncode == 2
    la = {(option(c, "--spatial_range"), option(c, "--max_iter"), option(c, "--sampling_times"))
          for c in commands if option(c, "--attr_method") == "la"}
    assert la == {(r, t, s) for r in ("10", "20", "30") for t in ("10", "20", "30") for s in ("10", "20", "30")}


def test_dry_run_of_a_narrowed_grid(tmp_path):
    done = grid("--dry-run", "--models", "resnet50,vgg16", "--methods", "sm la", "--spatial_ranges", "10 30",
                "--max_iters", "5", "--sampling_times", "7", "--limit", "3", "--weights", "random", "--device", "cpu",
                "--data_dir", "my data", "--csv_path", "out/r.csv", "--python", "/opt/py",
                "--launcher", "torchrun --nproc_per_node=4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = plan_commands(done.stdout)
    assert len(commands) == 2 * 2 * (1 + 2)  # 2 models x (sm + 2 LA settings), generate + eval
    gen = [c for c in commands if c[4].endswith("/generate_attributions.py")]
    ev = [c for c in commands if c[4].endswith("/eval.py")]
    assert len(gen) == len(ev) == 6
    for c in commands:
        assert c[:5] == ["/opt/py", "-m", "torch.distributed.run", "--nproc_per_node=4", c[4]]
        assert option(c, "--limit") == "3" and option(c, "--weights") == "random" and option(c, "--device") == "cpu"
        assert option(c, "--data_dir") == "my data"
    for c in ev:
        assert option(c, "--csv_path") == "out/r.csv"
    # the sampling-times value goes to eval.py too (the published script forgets it there)
    for g, e in zip(gen, ev):
        assert option(g, "--model") == option(e, "--model") and option(g, "--attr_method") == option(e, "--attr_method")
        if option(g, "--attr_method") == "la":
            for flag in ["--spatial_range", "--max_iter", "--sampling_times"]:
                assert option(g, flag) == option(e, flag)
            assert option(e, "--sampling_times") == "7"
        else:
            assert "--sampling_times" not in e
    assert sorted(option(c, "--spatial_range") for c in gen if "--spatial_range" in c) == ["10", "10", "30", "30"]


def test_bad_options_are_usage_errors(tmp_path):
    for args in [["--bogus", "1"], ["--limit"], ["--max_iters", "two"]]:
        done = grid(*args, cwd=tmp_path)
        assert done.returncode == 2 and "para_explore.sh:" in done.stderr, (args, done.stderr)
    done = grid("--help", cwd=tmp_path)
    assert done.returncode == 0 and "--launcher" in done.stdout and "--dry-run" in done.stdout


# ---------------------------------------------------------------- a real (tiny) grid


def summary_counts(stdout):
    match = re.search(r"(\d+) cells: (\d+) ran, (\d+) skipped \(done\), (\d+) failed", stdout)
    assert match, stdout
    return tuple(int(g) for g in match.groups())


def test_tiny_grid_runs_resumes_and_survives_a_failing_cell(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    torch.save(make_images(4, size=32, seed=3), data / "img_batch.pt")
    torch.save(torch.arange(4) * 100, data / "label_batch.pt")
    args = ["--models", "efficientnet_lite0", "--methods", "nosuch sm la", "--spatial_ranges", "20",
            "--max_iters", "2", "--sampling_times", "2", "--limit", "2", "--data_dir", data, "--device", "cpu",
            "--python", sys.executable, "--gen_args", "--batch_size 2",
            "--eval_args", "--batch_size 450"]  # 2 images x 225 steps in one forward
    # one thread: tiny models pay for thread hand-offs, badly so when other work shares the CPUs
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    first = grid(*args, cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stdout + first.stderr  # one cell failed
    assert summary_counts(first.stdout) == (3, 2, 0, 1)
    failed = [line for line in first.stdout.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1 and "nosuch" in failed[0] and "unknown method" in failed[0]
    log = tmp_path / "logs" / "grid" / "efficientnet_lite0_nosuch.log"
    assert f"log: logs/grid/{log.name}" in failed[0] and "unknown method" in log.read_text()
    # the failing first cell did not stop the others
    stem = "efficientnet_lite0_la_spatial-range-20_max-iter-2_sampling-times-2"
    for name in ["efficientnet_lite0_sm", stem]:
        assert (tmp_path / "attributions" / f"{name}_attributions.npy").exists()
        assert (tmp_path / "scores" / f"{name}_scores.npz").exists()
        assert (tmp_path / "logs" / "grid" / f"{name}.log").exists()
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    keys = sorted((r["attr_method"], r["spatial_range"], r["max-iter"], r["samples_number"]) for r in rows)
    assert keys == [("la", "20", "2", "2"), ("sm", "-", "-", "-")]
    la_scores = np.load(tmp_path / "scores" / f"{stem}_scores.npz")
    la_row = next(r for r in rows if r["attr_method"] == "la")
    assert float(la_row["insertion"]) == pytest.approx(round(float(la_scores["ins"]), 6))
    assert (tmp_path / "logs" / "grid" / "summary.txt").read_text().strip() in first.stdout

    # a rerun (e.g. after a crash) skips what is done; a lost results.csv gets its rows back
    (tmp_path / "results.csv").unlink()
    again = grid(*args, cwd=tmp_path, env=env)
    assert again.returncode == 1
    assert summary_counts(again.stdout) == (3, 0, 2, 1)
    skipped = [line for line in again.stdout.splitlines() if line.startswith("skipped:")]
    assert sorted(skipped) == ["skipped: efficientnet_lite0 la r=20 T=2 S=2", "skipped: efficientnet_lite0 sm"]
    with open(tmp_path / "results.csv") as f:
        assert sorted(r["attr_method"] for r in csv.DictReader(f)) == ["la", "sm"]

    # the dry run shows done cells as skipped
    plan = grid(*args, "--dry-run", cwd=tmp_path)
    assert plan.stdout.count("scores.npz exists), skipped") == 2


# ---------------------------------------------------------------- tables.py


HAND_CSV = """model,attr_method,spatial_range,max-iter,samples_number,insertion,deletion
vgg16,sm,-,-,-,0.25,0.12
resnet50,sm,-,-,-,0.2,0.1
resnet50,ig,-,-,-,0.3,0.05
resnet50,la,20,20,20,0.5,0.08
resnet50,la,10,20,20,0.6,0.07
resnet50,la,10,10,20,0.4,0.09
resnet50,la,30,30,10,0.45,0.06
vgg16,la,10,10,10,0.45,0.11
vgg16,la,10,10,20,0.55,0.13
vgg16,la,30,10,20,0.35,0.02
vgg16,agi,-,-,-,0.31,0.015
"""


@pytest.fixture
def hand_csv(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(HAND_CSV)
    return path


def markdown_rows(text, title):
    """{first cell: [cells]} of the Markdown table that follows `title`, and its header."""
    block = text.split(title, 1)[1].strip().split("\n\n")[0].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in block]
    return cells[0], {row[0]: row[1:] for row in cells[2:]}


def test_main_tables_put_numbers_in_the_right_cells(hand_csv):
    from labench.present import tables

    df = tables.load_results(hand_csv)
    result, chosen = tables.main_tables(df)
    ins, dele = result[INSERTION], result[DELETION]
    assert list(ins.index) == ["resnet50", "vgg16"]  # the paper's model order
    assert list(ins.columns) == ["la", "agi", "ig", "sm"]  # the paper's method order
    # LA: the paper default where present, else the most work (identity.choose_setting, as the grid figure)
    assert chosen == {"resnet50": (20, 20, 20), "vgg16": (10, 10, 20)}
    assert ins.loc["resnet50", "la"] == 0.5 and dele.loc["resnet50", "la"] == 0.08
    assert ins.loc["vgg16", "la"] == 0.55 and dele.loc["vgg16", "la"] == 0.13
    assert ins.loc["resnet50", "ig"] == 0.3 and dele.loc["vgg16", "agi"] == 0.015
    assert np.isnan(ins.loc["vgg16", "ig"]) and np.isnan(ins.loc["resnet50", "agi"])
    # other choices
    assert tables.main_tables(df, la="best")[1]["resnet50"] == (10, 20, 20)
    forced, chosen = tables.main_tables(df, la=(30, 30, 10))
    assert forced[DELETION].loc["resnet50", "la"] == 0.06 and np.isnan(forced[INSERTION].loc["vgg16", "la"])
    assert chosen["vgg16"] is None
    everything, _ = tables.main_tables(df, all_methods=True)
    assert [tables.display_name(m) for m in everything[INSERTION].columns] == [
        "LA", "AGI", "AttEXplore", "BIG", "DeepLIFT", "EG", "FIG", "GIG", "IG", "MFABA", "SG", "SM"]


def test_model_order_reads_the_model_field_not_the_tag():
    from types import SimpleNamespace

    from labench.present import tables

    def out(model, tag):
        return SimpleNamespace(model=model, model_tag=tag)

    # 'resnet50-x' is a model of its own (a name with '-'), not resnet50 under a mode
    outputs = [out("resnet50-x", "resnet50-x"), out("vgg16", "vgg16"), out("resnet50", "resnet50-amp"),
               out("resnet50", "resnet50"), out("my-net", "my-net"), out("resnet50", "resnet50")]
    assert tables.model_order(outputs) == ["resnet50", "resnet50-amp", "vgg16", "resnet50-x", "my-net"]


def test_markdown_and_latex_bold_the_best_of_each_row(hand_csv, tmp_path):
    from labench.present import tables

    text, written = tables.write_tables(hand_csv, tmp_path / "out")
    header, ins = markdown_rows(text, "**Insertion (higher is better)**")
    assert header == ["Model", "LA", "AGI", "IG", "SM"]
    assert ins["resnet50"] == ["**0.5000**", "-", "0.3000", "0.2000"]
    assert ins["vgg16"] == ["**0.5500**", "0.3100", "-", "0.2500"]
    _, dele = markdown_rows(text, "**Deletion (lower is better)**")
    assert dele["resnet50"] == ["0.0800", "-", "**0.0500**", "0.1000"]
    assert dele["vgg16"] == ["0.1300", "**0.0150**", "-", "0.1200"]

    latex = (tmp_path / "out" / "deletion.tex").read_text()
    rows = {line.split(" & ")[0]: line for line in latex.splitlines() if " & " in line}
    assert rows["vgg16"] == r"vgg16 & 0.1300 & \textbf{0.0150} & - & 0.1200 \\"
    assert rows["resnet50"].count(r"\textbf") == 1 and r"\textbf{0.0500}" in rows["resnet50"]
    latex_ins = (tmp_path / "out" / "insertion.tex").read_text()
    assert r"resnet50 & \textbf{0.5000} & - & 0.3000 & 0.2000 \\" in latex_ins
    assert r"\begin{tabular}{lcccc}" in latex_ins and r"\end{tabular}" in latex_ins
    assert (tmp_path / "out" / "tables.md").read_text().strip() == text.strip()
    for name in ["insertion.md", "deletion.md", "la_grid.md", "la_grid_resnet50.png", "la_grid_vgg16.png"]:
        assert tmp_path / "out" / name in written


def test_ties_are_all_bold_and_digits_round(tmp_path):
    from labench.present import tables

    path = tmp_path / "r.csv"
    path.write_text("model,attr_method,spatial_range,max-iter,samples_number,insertion,deletion\n"
                    "m_x,sm,-,-,-,0.30001,0.2\nm_x,ig,-,-,-,0.29999,0.2\n")
    text, _ = tables.write_tables(path, tmp_path / "o", digits=3, plots=False)
    _, ins = markdown_rows(text, "**Insertion (higher is better)**")
    assert ins["m_x"] == ["**0.300**", "**0.300**"]
    assert r"m\_x &" in (tmp_path / "o" / "insertion.tex").read_text()


def test_la_grid_table_and_figure(hand_csv, tmp_path):
    from labench.present import tables

    df = tables.load_results(hand_csv)
    grid = tables.la_grid(df, "resnet50", INSERTION)
    # rows: every (spatial_range, max_iter) of the model's LA runs; columns: sampling_times
    assert grid.shape == (3 * 3, 2)
    assert list(grid.columns) == [10, 20]
    assert grid.loc[(10, 20), 20] == 0.6 and grid.loc[(30, 30), 10] == 0.45
    assert np.isnan(grid.loc[(20, 10), 10])
    assert tables.la_grid(df, "vgg16", DELETION).shape == (2 * 1, 2)
    assert tables.la_grid(df, "nomodel").empty

    text = tables.la_grid_markdown(df)
    header, _ = markdown_rows(text, "**LA grid, resnet50: Insertion (higher is better)** (best in bold)")
    assert header == ["r (spatial_range)", "T (max_iter)", "S=10", "S=20"]
    block = text.split("**LA grid, resnet50: Insertion")[1].split("\n\n")[1].splitlines()
    assert len(block) == 2 + 9  # header, rule, one line per (r, T)
    assert "| 10 | 20 | - | **0.6000** |" in block and "| 20 | 10 | - | - |" in block

    png = tables.la_grid_plot(df, "vgg16", tmp_path / "g.png")
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tables.la_grid_plot(df, "nomodel", tmp_path / "none.png") is None


def test_tables_cli_prints_markdown_and_handles_bad_input(hand_csv, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tables.py"), "--csv", str(hand_csv),
                           "--out", str(tmp_path / "t"), "--la", "best"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| resnet50 | **0.6000** |" in done.stdout and (tmp_path / "t" / "la_grid_resnet50.png").exists()
    for args in [["--csv", str(tmp_path / "missing.csv")], ["--csv", str(hand_csv), "--la", "1,2"]]:
        bad = subprocess.run([sys.executable, str(ROOT / "tables.py"), *args, "--out", str(tmp_path / "x")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stderr.startswith("error:"), bad.stderr


def test_load_results_keeps_the_last_duplicate(tmp_path):
    from labench.present import tables

    path = tmp_path / "r.csv"
    path.write_text("model,attr_method,spatial_range,max-iter,samples_number,insertion,deletion\n"
                    "a,la,20,20,20,0.1,0.2\na,la,20,20,20,0.3,0.4\na,sm,-,-,-,0.5,\n")
    df = tables.load_results(path)
    assert len(df) == 2
    assert df[df.attr_method == "la"]["insertion"].item() == 0.3
    sm = df[df.attr_method == "sm"].iloc[0]
    assert sm["spatial_range"] is None and pd.isna(sm["deletion"])
