"""Files that are never half-written: atomic writes, checked reads, the locked results.csv."""
from __future__ import annotations

import contextlib
import csv
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import RunFailure, UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make every output private to its writer
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on `path`.lock for the block: one writer at a time among processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def check_output_folder(folder, needed_bytes=0, flag="--prefix"):
    """Refuse, before any work and without creating anything, an output folder that cannot be
    created or written, or whose disk lacks `needed_bytes` (plus a 5% margin)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{flag} {folder}: {existing} is a file, not a folder; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {folder}: {existing} is not writable; choose another {flag}")
    free = shutil.disk_usage(existing).free
    if needed_bytes and free < needed_bytes * 1.05:
        raise RunFailure(f"{flag} {folder}: the output needs about {needed_bytes / 2**20:.0f} MiB but the disk has "
                         f"{free / 2**20:.0f} MiB free; free space or choose another {flag}")


def save_tensor(tensor, path):
    with atomic_path(path) as tmp:
        torch.save(tensor, tmp)


def save_npy(array, path):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_npz(arrays: dict, path):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npy(path, what="file", mmap=False):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; run generate_attributions.py first")
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except Exception as err:  # truncated or not an npy file
        raise UserError(f"{what} {path} is corrupt ({type(err).__name__}); delete it and rerun") from None


def load_npz(path, what="scores file"):
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except Exception:
        raise UserError(f"{what} {path} is corrupt; delete it and rerun eval.py") from None


CSV_COLUMNS = ["model", "attr_method", "spatial_range", "max-iter", "samples_number", "insertion", "deletion"]
CSV_KEY = CSV_COLUMNS[:5]


def read_results(csv_path) -> list[dict]:
    """The rows of a results.csv this project wrote; a foreign or damaged file is reported, never
    silently rewritten."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return []
    text = csv_path.read_text()
    if not text:
        return []
    lines = text.splitlines()
    if lines[0].split(",") != CSV_COLUMNS:
        raise UserError(f"{csv_path} is not a results table of this project (its header is {lines[0][:80]!r}); "
                        "move it away or pass another --csv_path")
    rows = list(csv.DictReader(lines))
    if not text.endswith("\n") or any(None in r.values() or None in r for r in rows):
        raise UserError(f"{csv_path} is damaged (a truncated or malformed row); repair or remove that row, or move "
                        "the file away")
    return rows


def upsert_csv_row(csv_path, row: dict):
    """Write `row` into results.csv, replacing a row with the same (model, method, parameters).

    The file is rewritten under an exclusive lock and renamed into place, so concurrent
    writers lose nothing and a reader never sees half a file.
    """
    csv_path = Path(csv_path)
    row = {k: str(row[k]) for k in CSV_COLUMNS}
    with locked(csv_path):
        rows = [r for r in read_results(csv_path) if [r.get(k) for k in CSV_KEY] != [row[k] for k in CSV_KEY]]
        rows.append(row)
        with atomic_path(csv_path) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
