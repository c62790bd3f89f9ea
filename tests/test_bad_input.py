"""Bad input never costs a traceback or a half-written folder: one table of bad inputs across the
scripts, each ending with exit status != 0, one line that names the fix, no traceback, and no
new or changed file anywhere (the run folder and the project's working copy)."""
import errno
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, load_script, make_images
from labench.errors import run_cli

SCRIPTS = {name: load_script(name) for name in ("generate_pt", "generate_attributions", "eval", "plot", "tables")}
LA_SMALL = ["--max_iter", "2", "--sampling_times", "3"]


def snapshot(*folders):
    """{path: digest} of every file under the folders (the project's .git/.venv/caches left out)."""
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", "la_bench.egg-info"}
    files = {}
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in skip]
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[path] = hashlib.sha1(f.read()).hexdigest()
    return files


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder with good data, bad data of every kind, and a file where a folder should be."""
    work = tmp_path_factory.mktemp("bad")
    good = work / "data"
    good.mkdir()
    torch.save(make_images(2, size=32), good / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), good / "label_batch.pt")
    variants = {
        "nan": (make_images(2, size=32).index_put_((torch.tensor([0]),), torch.tensor(float("nan"))), [1, 2]),
        "short": (make_images(2, size=32), [1]),
        "outside": (make_images(2, size=32), [1, 1000]),
        "gray": (make_images(2, size=32)[:, :1], [1, 2]),
    }
    for name, (images, labels) in variants.items():
        (work / name).mkdir()
        torch.save(images, work / name / "img_batch.pt")
        torch.save(torch.tensor(labels), work / name / "label_batch.pt")
    (work / "corrupt").mkdir()
    (work / "corrupt" / "img_batch.pt").write_bytes(b"not a tensor")
    torch.save(torch.tensor([1, 2]), work / "corrupt" / "label_batch.pt")
    (work / "afile").write_text("a file, not a folder")
    maps = work / "maps"
    maps.mkdir()
    np.save(maps / "efficientnet_lite0_sm_attributions.npy", np.full((2, 3, 32, 32), np.nan, np.float32))
    np.save(maps / "efficientnet_lite0_ig_attributions.npy", np.zeros((3, 3, 32, 32), np.float32))
    (maps / "efficientnet_lite0_eg_attributions.npy").write_bytes(b"\x93NUMPY truncated")
    pngs = work / "pngs"
    pngs.mkdir()
    for i in range(2):
        Image.new("RGB", (224, 224), (10 * i, 0, 255)).save(pngs / f"{i}.png")
    torch.save(torch.tensor([1, 2, 3]), pngs / "label_batch.pt")
    (pngs / "broken").mkdir()
    (pngs / "broken" / "0.png").write_bytes(b"not a png")
    torch.save(torch.tensor([1]), pngs / "broken" / "label_batch.pt")
    (work / "foreign.csv").write_text("name,score\nx,1\n")
    return work


GEN = ["--data_dir", "data", "--prefix", "attributions", "--device", "cpu"]
EVAL = ["--data_dir", "data", "--attr_prefix", "maps", "--prefix", "scores", "--device", "cpu"]
CASES = [  # (script, arguments, words the one line must hold)
    ("generate_pt", ["--png_dir", "no/such/folder"], ["does not exist", "--sample"]),
    ("generate_pt", ["--imagefolder", "no/such/tree"], ["is not a folder"]),
    ("generate_pt", ["--png_dir", "pngs", "--out_dir", "out"], ["2 images", "3 labels"]),
    ("generate_pt", ["--png_dir", "pngs/broken", "--out_dir", "out"], ["cannot read"]),
    ("generate_attributions", [*GEN, "--attr_method", "gradcam"], ["unknown method"]),
    ("generate_attributions", [*GEN, "--model", "resnet_nope"], ["unknown model"]),
    ("generate_attributions", [*GEN, "--attr_method", "la", "--max_iter", "0"], ["max_iter", ">= 1"]),
    ("generate_attributions", [*GEN, "--attr_method", "la", "--sampling_times", "0"], ["sampling_times"]),
    ("generate_attributions", [*GEN, "--attr_method", "la", "--spatial_range", "-5"], ["spatial_range", "> 0"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--device", "cuda"], ["no CUDA GPU", "--device cpu"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--device", "tpu9"], ["unknown device"]),
    ("generate_attributions", ["--data_dir", "missing", "--attr_method", "sm"], ["does not exist", "generate_pt.py"]),
    ("generate_attributions", ["--data_dir", "nan", "--attr_method", "ig"], ["NaN"]),
    ("generate_attributions", ["--data_dir", "short", "--attr_method", "sm"], ["2 images but 1 labels"]),
    ("generate_attributions", ["--data_dir", "outside", "--attr_method", "sm"], ["0..999"]),
    ("generate_attributions", ["--data_dir", "gray", "--attr_method", "sm"], ["[N,3,H,W]"]),
    ("generate_attributions", ["--data_dir", "corrupt", "--attr_method", "sm"], ["corrupt"]),
    ("generate_attributions", ["--data_dir", "data", "--attr_method", "sm", "--prefix", "afile/x"], ["is a file"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--limit", "0"], ["--limit"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--batch_size", "0"], ["--batch_size"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--max_rows", "-1"], ["--max_rows"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--model", "resnet50", "--weights", "IMAGENET9K"],
     ["unknown weights"]),
    ("generate_attributions", [*GEN, "--attr_method", "sm", "--weights", "no/such.pt"], ["no such checkpoint"]),
    ("eval", [*EVAL, "--attr_method", "agi"], ["does not exist", "generate_attributions.py"]),
    ("eval", [*EVAL, "--attr_method", "sm"], ["NaN"]),
    ("eval", [*EVAL, "--attr_method", "ig"], ["shape"]),
    ("eval", [*EVAL, "--attr_method", "eg"], ["corrupt"]),
    ("eval", [*EVAL, "--attr_method", "mfaba", "--csv_path", "foreign.csv"], ["not a results table"]),
    ("eval", [*EVAL, "--attr_method", "sm", "--prefix", "afile/s"], ["is a file"]),
    ("plot", ["heatmaps", "--attr_method", "agi", "--attr_prefix", "maps", "--data_dir", "data"], ["does not exist"]),
    ("plot", ["grid", "--dpi", "0", "--data_dir", "data"], ["--dpi"]),
    ("plot", ["curves", "--out", "figure.jpg", "--prefix", "maps"], [".png or .pdf"]),
    ("tables", ["--csv", "missing.csv"], ["does not exist"]),
    ("tables", ["--csv", "foreign.csv"], ["not a results table"]),
    ("tables", ["--csv", "foreign.csv", "--la", "1,2"], ["--la"]),
    ("eval", [*EVAL, "--attr_method", "sm", "--weights", "random", "--seed", "-1"], ["--seed must be at least 0"]),
]


@pytest.mark.parametrize("script, argv, words", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_and_changes_nothing(run_folder, script, argv, words, capsys, monkeypatch):
    monkeypatch.chdir(run_folder)
    before = snapshot(run_folder, ROOT)
    code = 0
    try:
        run_cli(lambda: SCRIPTS[script].main(list(argv)))
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code not in (0, None), err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    assert snapshot(run_folder, ROOT) == before


@pytest.mark.parametrize("argv, words", [
    (["--limit", "abc"], "not a whole number"),
    (["--bogus"], "unknown option"),
    (["--models", ""], "--models is empty"),
])
def test_para_explore_usage_errors(tmp_path, argv, words):
    done = subprocess.run(["bash", str(ROOT / "para_explore.sh"), *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_argument_error_is_exit_2_and_a_failure_exit_1_and_debug_keeps_the_traceback(run_folder):
    bad = subprocess.run([sys.executable, str(ROOT / "generate_attributions.py"), "--data_dir", "data",
                          "--attr_method", "la", "--max_iter", "0", "--device", "cpu"],
                         cwd=run_folder, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    debug = subprocess.run([sys.executable, str(ROOT / "generate_attributions.py"), "--debug", "--data_dir", "data",
                            "--attr_method", "la", "--max_iter", "0", "--device", "cpu"],
                           cwd=run_folder, capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_disk_full_and_read_only_writes_fail_in_one_line_and_a_rerun_finishes_identically(tmp_path, capsys,
                                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    torch.save(make_images(3, size=32), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2, 3]), tmp_path / "data" / "label_batch.pt")
    gen, evaluate = SCRIPTS["generate_attributions"], SCRIPTS["eval"]
    common = ["--data_dir", "data", "--attr_method", "ig", "--device", "cpu", "--batch_size", "1"]

    def call(module, argv):
        try:
            run_cli(lambda: module.main(argv))
        except SystemExit as stop:
            return stop.code, capsys.readouterr().err.strip()
        return 0, capsys.readouterr().err.strip()

    assert call(gen, [*common, "--attr_method", "sm"])[0] == 0 and call(evaluate, [*common, "--attr_method", "sm"])[0] == 0
    earlier = snapshot(tmp_path)
    real_save = np.save
    for code_name in ("ENOSPC", "EROFS"):
        writes = []

        def failing_save(file, array, *args, **kwargs):
            writes.append(1)
            if len(writes) == 2:  # the second chunk (chunks hold one batch of 16 images: use --chunk 1)
                raise OSError(getattr(errno, code_name), os.strerror(getattr(errno, code_name)))
            return real_save(file, array, *args, **kwargs)

        monkeypatch.setattr(np, "save", failing_save)
        code, err = call(gen, [*common, "--chunk", "1"])
        monkeypatch.setattr(np, "save", real_save)
        err = err.splitlines()[-1]  # after the progress bar the run printed
        assert code == 1 and err.startswith("error:") and os.strerror(getattr(errno, code_name)) in err, err
        after = snapshot(tmp_path)
        assert {k: v for k, v in after.items() if k in earlier} == earlier  # earlier outputs and results.csv intact
        assert not (tmp_path / "attributions" / "efficientnet_lite0_ig_attributions.npy").exists()
    assert call(gen, [*common, "--chunk", "1"])[0] == 0  # after freeing space: resumes and finishes
    resumed = np.load(tmp_path / "attributions" / "efficientnet_lite0_ig_attributions.npy")
    assert call(gen, [*common, "--chunk", "1", "--prefix", "fresh"])[0] == 0
    assert np.array_equal(resumed, np.load(tmp_path / "fresh" / "efficientnet_lite0_ig_attributions.npy"))
    stray = [p for p in (tmp_path / "attributions").rglob("*.tmp")]
    assert stray == []


def test_the_results_lock_survives_a_writer_killed_while_holding_it(tmp_path):
    from labench.store.files import upsert_csv_row

    csv_path = tmp_path / "results.csv"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"lock = open({str(csv_path) + '.lock'!r}, 'w')\n"
        "fcntl.flock(lock, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock with the process
    holder.wait(timeout=30)
    row = {"model": "m", "attr_method": "sm", "spatial_range": "-", "max-iter": "-", "samples_number": "-",
           "insertion": 0.5, "deletion": 0.1}
    done = subprocess.run([sys.executable, "-c", (
        "from labench.store.files import upsert_csv_row\n"
        f"upsert_csv_row({str(csv_path)!r}, {row!r})\n")], timeout=60)
    assert done.returncode == 0
    assert csv_path.read_text().splitlines()[1] == "m,sm,-,-,-,0.5,0.1"
    upsert_csv_row(csv_path, {**row, "insertion": 0.6})  # and in this process too
    assert csv_path.read_text().splitlines()[1:] == ["m,sm,-,-,-,0.6,0.1"]


@pytest.mark.parametrize("content", ["model,attr_method\nm,sm\n",  # foreign header
                                     "model,attr_method,spatial_range,max-iter,samples_number,insertion,deletion\n"
                                     "m,sm,-,-,-,0.5"])  # a truncated last line
def test_a_foreign_or_damaged_results_csv_is_reported_not_rewritten(tmp_path, content):
    from labench.errors import UserError
    from labench.store.files import upsert_csv_row

    csv_path = tmp_path / "results.csv"
    csv_path.write_text(content)
    row = {"model": "m", "attr_method": "ig", "spatial_range": "-", "max-iter": "-", "samples_number": "-",
           "insertion": 0.5, "deletion": 0.1}
    with pytest.raises(UserError, match="results table|damaged"):
        upsert_csv_row(csv_path, row)
    assert csv_path.read_text() == content


def test_damaged_chunks_and_manifests_are_recomputed_never_loaded(tmp_path):
    from labench.store.jobs import ChunkStore, Distributed

    with ChunkStore(tmp_path / "out.npy", 6, 2, {"seed": 0}) as store:  # leaving the block releases its lock
        assert store.claim(Distributed(torch.device("cpu"))) == [(0, 2), (2, 4), (4, 6)]
        for a, b in store.ranges():
            store.save(a, b, np.full((b - a, 3), a, np.float32))
        (store.folder / "00000002-00000004.npy").write_bytes(b"\x93NUMPY half a chunk")  # torn by a crash
        np.save(store.folder / "00000004-00000006.npy", np.zeros((1, 3), np.float32))  # wrong length
        assert store.pending() == [(2, 4), (4, 6)]
        assert sorted(p.name for p in store.folder.glob("*.npy")) == ["00000000-00000002.npy"]
    (store.folder / "settings.json").write_text("{not json")  # an unreadable manifest: start over
    with ChunkStore(tmp_path / "out.npy", 6, 2, {"seed": 0}) as again:
        assert again.claim(Distributed(torch.device("cpu"))) == [(0, 2), (2, 4), (4, 6)]
    with pytest.raises(Exception, match="other settings .*seed.*rm -r"):
        with ChunkStore(tmp_path / "out.npy", 6, 2, {"seed": 1}) as other:
            other.claim(Distributed(torch.device("cpu")))


def test_too_little_free_disk_is_refused_before_any_work(run_folder, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    monkeypatch.chdir(run_folder)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    before = snapshot(run_folder)
    for script, argv in [("generate_attributions", [*GEN, "--attr_method", "sm"]),
                         ("eval", ["--data_dir", "data", "--attr_prefix", "maps", "--attr_method", "sm", "--device", "cpu"])]:
        with pytest.raises(SystemExit) as stop:
            run_cli(lambda: SCRIPTS[script].main(argv))
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 1 and err.startswith("error: --prefix") and "MiB free" in err, err
    assert snapshot(run_folder) == before


def test_atomic_outputs_get_the_usual_file_mode(tmp_path):
    """A file written through a temporary name is readable as any file the user writes (the
    umask's mode), not mkstemp's private 0600."""
    import os

    from labench.store.files import atomic_path

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
