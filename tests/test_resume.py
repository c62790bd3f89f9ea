"""Resume after kill -9, torchrun sharding, one writer per output, and concurrent results.csv
writers."""
import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, make_images
from labench.store.files import upsert_csv_row
from labench.store.jobs import OutputLock

LA_SMALL = ["--model", "efficientnet_lite0", "--attr_method", "la", "--max_iter", "2", "--sampling_times", "2",
            "--batch_size", "2", "--chunk", "2"]
STEM = "efficientnet_lite0_la_spatial-range-20_max-iter-2_sampling-times-2"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    torch.save(make_images(8, size=32, seed=4), folder / "img_batch.pt")
    torch.save(torch.arange(8) * 100, folder / "label_batch.pt")
    return folder


def command(script, data_dir, out, *extra):
    return [sys.executable, str(ROOT / script), "--data_dir", str(data_dir), *extra, *out]


def run_to_end(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return done


def kill_when(cmd, cwd, parts, chunks_on_disk):
    """Start cmd, SIGKILL it once `parts` holds that many chunk files (0: as soon as it starts)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list(parts.glob("0*.npy"))) >= chunks_on_disk:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_generate_resumes_bitwise_after_kills(data_dir, tmp_path):
    reference = tmp_path / "reference"
    run_to_end(command("generate_attributions.py", data_dir, ["--prefix", str(reference)], *LA_SMALL), tmp_path)
    expected = np.load(reference / f"{STEM}_attributions.npy")

    resumed = tmp_path / "resumed"
    cmd = command("generate_attributions.py", data_dir, ["--prefix", str(resumed)], *LA_SMALL)
    parts = resumed / f"{STEM}_attributions.npy.parts"
    for chunks in [0, 1, 3]:  # during start-up, after one chunk, after three of four
        kill_when(cmd, tmp_path, parts, chunks)
    assert not (resumed / f"{STEM}_attributions.npy").exists()
    assert 1 <= len(list(parts.glob("0*.npy"))) < 4
    run_to_end(cmd, tmp_path)
    got = np.load(resumed / f"{STEM}_attributions.npy")
    assert got.tobytes() == expected.tobytes()
    assert not parts.exists()


def test_eval_resumes_bitwise_after_kills(data_dir, tmp_path):
    maps = tmp_path / "attr"
    maps.mkdir()
    np.save(maps / "efficientnet_lite0_sm_attributions.npy", np.random.default_rng(0).random((8, 3, 32, 32), np.float32))
    common = ["--attr_method", "sm", "--attr_prefix", str(maps), "--chunk", "2", "--batch_size", "90"]
    run_to_end(command("eval.py", data_dir, ["--prefix", str(tmp_path / "s1"), "--csv_path", str(tmp_path / "r1.csv")],
                       *common), tmp_path)
    cmd = command("eval.py", data_dir, ["--prefix", str(tmp_path / "s2"), "--csv_path", str(tmp_path / "r2.csv")], *common)
    parts = tmp_path / "s2" / "efficientnet_lite0_sm_scores.npz.parts"
    for chunks in [0, 2]:
        kill_when(cmd, tmp_path, parts, chunks)
    run_to_end(cmd, tmp_path)
    a = np.load(tmp_path / "s1" / "efficientnet_lite0_sm_scores.npz")
    b = np.load(tmp_path / "s2" / "efficientnet_lite0_sm_scores.npz")
    for key in ["ins", "del", "ins_curve", "del_curve"]:
        assert a[key].tobytes() == b[key].tobytes()
    assert (tmp_path / "r1.csv").read_text() == (tmp_path / "r2.csv").read_text()


def test_resume_refuses_parts_made_with_other_settings(data_dir, tmp_path):
    cmd = command("generate_attributions.py", data_dir, ["--prefix", str(tmp_path)], *LA_SMALL)
    kill_when(cmd, tmp_path, tmp_path / f"{STEM}_attributions.npy.parts", 1)
    other = [a if a != "--batch_size" else a for a in LA_SMALL]
    other[other.index("--batch_size") + 1] = "1"
    done = subprocess.run(command("generate_attributions.py", data_dir, ["--prefix", str(tmp_path)], *other),
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "other settings" in done.stderr


def test_torchrun_two_ranks_write_what_one_process_writes(data_dir, tmp_path):
    """torchrun gives each rank OMP_NUM_THREADS=1; the thread count decides how CPU kernels
    round, and LA's sign steps amplify rounding, so the single process gets one thread too."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    run_to_end(command("generate_attributions.py", data_dir, ["--prefix", str(one)], *LA_SMALL), tmp_path, env)
    two = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"]
    run_to_end(torchrun + command("generate_attributions.py", data_dir, ["--prefix", str(two)], *LA_SMALL)[1:], tmp_path, env)
    a = np.load(one / f"{STEM}_attributions.npy")
    b = np.load(two / f"{STEM}_attributions.npy")
    assert a.tobytes() == b.tobytes()

    scores = ["--attr_prefix", str(one), "--chunk", "2", "--batch_size", "90", *LA_SMALL[:8]]
    run_to_end(command("eval.py", data_dir, ["--prefix", str(tmp_path / "s1"), "--csv_path", str(tmp_path / "one.csv")],
                       *scores), tmp_path, env)
    run_to_end(torchrun + command("eval.py", data_dir, ["--prefix", str(tmp_path / "s2"), "--csv_path",
                                                        str(tmp_path / "two.csv")], *scores)[1:], tmp_path, env)
    s1 = np.load(tmp_path / "s1" / f"{STEM}_scores.npz")
    s2 = np.load(tmp_path / "s2" / f"{STEM}_scores.npz")
    assert s1["ins_curve"].tobytes() == s2["ins_curve"].tobytes()
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


# random weights (seed 0) in separate processes: the same network, so the same maps and scores
RANDOM = ["--model", "efficientnet_lite0", "--weights", "random", "--batch_size", "1", "--chunk", "1"]
SM_RANDOM = [*RANDOM, "--attr_method", "sm"]  # eight chunks of one image, cheap ones
LA_RANDOM = [*RANDOM, "--attr_method", "la", "--max_iter", "2", "--sampling_times", "2"]  # slower chunks
SM_STEM = "efficientnet_lite0-random_sm"
LA_STEM = "efficientnet_lite0-random_la_spatial-range-20_max-iter-2_sampling-times-2"
WAITING = "waiting: another process"
WAITED = "was written by the process this one waited for; not recomputed"


@pytest.fixture(scope="module")
def sm_maps(data_dir, tmp_path_factory):
    """The folder of the single-process maps of SM_RANDOM."""
    folder = tmp_path_factory.mktemp("single")
    run_to_end(command("generate_attributions.py", data_dir, ["--prefix", str(folder)], *SM_RANDOM), folder)
    return folder


def start_until(cmd, cwd, text):
    """Start cmd; return (process, its stderr so far) once a line of its stderr holds `text`."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    for line in proc.stderr:
        seen += line
        if text in line:
            return proc, seen
    proc.wait()
    pytest.fail(f"the process ended (status {proc.returncode}) without saying {text!r}: {seen}")


def run_rest(proc, seen):
    """(status, stdout, whole stderr) of a process started by start_until."""
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, seen + err


def two_waiting_processes(cmd, cwd, output):
    """Two processes started on one output while this test holds its lock: both must wait; once
    the lock is released they run as they would if started one after the other."""
    lock = OutputLock(output)
    lock.acquire()
    try:
        started = [start_until(cmd, cwd, WAITING), start_until(cmd, cwd, WAITING)]
    finally:
        lock.release()
    return [run_rest(*p) for p in started]


def test_two_processes_on_one_output_compute_it_once(data_dir, tmp_path, sm_maps):
    out = tmp_path / "maps" / f"{SM_STEM}_attributions.npy"
    cmd = command("generate_attributions.py", data_dir, ["--prefix", str(out.parent)], *SM_RANDOM)
    runs = two_waiting_processes(cmd, tmp_path, out)
    assert [status for status, _, _ in runs] == [0, 0], runs
    writer = [r for r in runs if f"wrote {out}" in r[1]]
    waiter = [r for r in runs if WAITED in r[1]]
    assert len(writer) == len(waiter) == 1
    assert "8/8 img (100%)" in writer[0][2] and "img (" not in waiter[0][2]  # the waiter computed nothing
    assert all("\r" not in err and len(err.splitlines()) <= 12 for _, _, err in runs)  # log lines, no bar
    assert np.load(out).tobytes() == np.load(sm_maps / out.name).tobytes()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no parts, no lock file left


def test_two_eval_processes_on_one_output_score_it_once(data_dir, tmp_path, sm_maps):
    scores = ["--attr_prefix", str(sm_maps), "--limit", "1", "--batch_size", "90", *SM_RANDOM[:4], "--chunk", "1",
              "--attr_method", "sm"]
    run_to_end(command("eval.py", data_dir, ["--prefix", str(tmp_path / "s1"), "--csv_path",
                                             str(tmp_path / "one.csv")], *scores), tmp_path)
    out = tmp_path / "s2" / f"{SM_STEM}_scores.npz"
    cmd = command("eval.py", data_dir, ["--prefix", str(out.parent), "--csv_path", str(tmp_path / "two.csv")], *scores)
    runs = two_waiting_processes(cmd, tmp_path, out)
    assert [status for status, _, _ in runs] == [0, 0], runs
    assert sorted(WAITED in stdout for _, stdout, _ in runs) == [False, True]
    a, b = np.load(tmp_path / "s1" / out.name), np.load(out)
    for key in ["ins", "del", "ins_curve", "del_curve", "classes"]:
        assert a[key].tobytes() == b[key].tobytes()
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()  # one row, the same


def test_killing_the_lock_holder_lets_the_waiting_process_finish(data_dir, tmp_path):
    single = tmp_path / "single"
    run_to_end(command("generate_attributions.py", data_dir, ["--prefix", str(single)], *LA_RANDOM), tmp_path)
    out = tmp_path / "run" / f"{LA_STEM}_attributions.npy"
    parts = out.with_name(f"{out.name}.parts")
    cmd = command("generate_attributions.py", data_dir, ["--prefix", str(out.parent)], *LA_RANDOM)
    holder = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and holder.poll() is None and not list(parts.glob("0*.npy")):
            time.sleep(0.01)
        holder.send_signal(signal.SIGSTOP)  # frozen while it holds the lock
        saved = len(list(parts.glob("0*.npy")))
        assert 1 <= saved < 8 and not out.exists(), "the first process was not stopped within its run"
        waiter, seen = start_until(cmd, tmp_path, WAITING)
        assert f"pid {holder.pid}" in seen
    finally:
        holder.kill()  # kill -9: the OS drops its lock
        holder.wait()
    status, stdout, err = run_rest(waiter, seen)
    assert status == 0 and f"wrote {out}" in stdout, err
    left = 8 - saved
    assert f"{left}/{left} img (100%)" in err  # only the chunks the holder had not saved
    assert np.load(out).tobytes() == np.load(single / out.name).tobytes()
    assert [p.name for p in out.parent.iterdir() if not p.name.startswith(".")] == [out.name]
    assert not out.with_name(f".{out.name}.lock").exists()


def _write_rows(path, writer, count):
    for i in range(count):
        upsert_csv_row(path, {"model": f"m{writer}", "attr_method": "la", "spatial_range": i, "max-iter": 1,
                              "samples_number": 1, "insertion": i / 10, "deletion": writer})


def test_concurrent_csv_writers_lose_and_tear_nothing(tmp_path):
    path = tmp_path / "results.csv"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_rows, args=(path, w, 25)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 75
    assert {(r["model"], r["spatial_range"]) for r in rows} == {(f"m{w}", str(i)) for w in range(3) for i in range(25)}
    # rerunning a cell replaces its row
    upsert_csv_row(path, {"model": "m0", "attr_method": "la", "spatial_range": 3, "max-iter": 1, "samples_number": 1,
                          "insertion": 0.99, "deletion": 0.01})
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 75
    assert [r["insertion"] for r in rows if r["model"] == "m0" and r["spatial_range"] == "3"] == ["0.99"]


def test_a_lock_this_process_holds_is_an_error_not_a_hang(tmp_path):
    first = OutputLock(tmp_path / "out.npy")
    first.acquire()
    with pytest.raises(RuntimeError, match="already holds the lock"):
        OutputLock(tmp_path / "out.npy").acquire()
    first.release()
    again = OutputLock(tmp_path / "out.npy")
    again.acquire()  # released: free again, and the lock file is a new one
    assert (tmp_path / ".out.npy.lock").read_text() == str(os.getpid())
    again.release()
    assert not (tmp_path / ".out.npy.lock").exists()


def test_report_stops_promptly_on_sigterm_leaving_whole_outputs_and_resumes(data_dir, tmp_path):
    """SIGTERM mid-run: report.py ends within seconds (exit 130, one line saying how to resume);
    every output on disk is whole (no temporary file, every .npy and .npz readable) or absent;
    the same command then finishes, and its numbers are an uninterrupted run's."""
    args = ["--model", "efficientnet_lite0", "--weights", "random", "--methods", "sm", "ig", "--images", "2",
            "--variants", "--data_dir", str(data_dir), "--device", "cpu", "--runtime", "torch"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    run_to_end([sys.executable, str(ROOT / "report.py"), *args, "--out", str(reference)], tmp_path, env)

    out = tmp_path / "stopped"
    cmd = [sys.executable, str(ROOT / "report.py"), *args, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(out.glob("attributions/*_attributions.npy")):
        time.sleep(0.01)  # the first maps are written: the run is mid-way, on the next method's
    assert proc.poll() is None, "the report ended before it could be stopped"
    stopped_at = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.time() - stopped_at < 20
    assert proc.returncode == 130 and "rerun the same command to resume" in err.strip().splitlines()[-1]
    leftovers = [p for p in out.rglob("*") if p.is_file() and (".tmp" in p.name or p.name.startswith("tmp"))]
    assert leftovers == []
    for path in [*out.rglob("*.npy"), *out.rglob("*.npz")]:
        np.load(path)  # whole: a half-written file would not load
    assert not (out / "README.md").exists()

    run_to_end(cmd, tmp_path, env)
    with open(reference / "results.csv") as f, open(out / "results.csv") as g:
        assert list(csv.DictReader(f)) == list(csv.DictReader(g))
    for name in ("efficientnet_lite0-random_sm_scores.npz", "efficientnet_lite0-random_ig_scores.npz"):
        want, got = np.load(reference / "scores" / name), np.load(out / "scores" / name)
        assert all(np.array_equal(want[k], got[k]) for k in want.files)
