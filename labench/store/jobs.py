"""Resumable, shardable work over the images of the evaluation set.

A job splits images 0..N-1 into fixed chunks. Each finished chunk is saved atomically as its own
.npy in `<output>.parts/`; a rerun (after a crash or `kill -9`) skips the chunks on disk, and the
ranks of a `torchrun` launch take every world_size-th chunk. When all chunks exist, rank 0 joins
them into the output. Chunk boundaries depend only on N and the chunk size, so the output is
bitwise the same however the work was interrupted or split.

One writer per output: a job holds an advisory lock on its output (OutputLock) from listing its
chunks to writing the output. A second process started on the same output (another terminal, a
grid relaunched while running) waits, saying so in one line, and then finds the output written
(and stops) or the chunks left by a holder that died (and finishes them): no chunk is computed
twice, none is lost, and the output is the single-process one.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..errors import UserError
from .files import atomic_path, save_npy


class Distributed:
    """This process's rank and world size under torchrun (torch.distributed), else 0 of 1."""

    def __init__(self, device):
        self.rank, self.world = 0, 1
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                # ranks may wait long for each other at the final barrier (uneven resumes)
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=24))
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @property
    def main(self):
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self):
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


class OutputLock:
    """An exclusive advisory lock (fcntl.flock) on one output, held through the hidden file
    `.<output name>.lock` beside it. The OS drops the lock when its process dies, kill -9
    included, so a lock file left behind is never a held lock. The holder removes the file when
    it releases; a waiter that then holds the lock of a removed file tries again on the new one."""

    held = set()  # the lock files this process holds

    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = self.output.with_name(f".{self.output.name}.lock")
        self.file = None

    def acquire(self, stream=None):
        """Take the lock; while another process holds it, wait, after one line on `stream`
        (default: stderr) naming the output and the holder's process id."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.path)
        if key in OutputLock.held:  # flock would wait for this very process: forever
            raise RuntimeError(f"this process already holds the lock of {self.output} (a job not released)")
        said = False
        while True:
            file = open(self.path, "a+")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not said:
                    self._say_waiting(file, sys.stderr if stream is None else stream)
                    said = True
                fcntl.flock(file, fcntl.LOCK_EX)
            if self._holds_current_file(file):
                break
            file.close()
        file.truncate(0)
        file.write(str(os.getpid()))
        file.flush()
        self.file, self.key = file, key
        OutputLock.held.add(key)

    def _say_waiting(self, file, stream):
        file.seek(0)
        holder = file.read().strip()
        who = f"another process (pid {holder})" if holder.isdigit() else "another process"
        print(f"waiting: {who} is writing {self.output}; this one goes on when it ends (no chunk is computed twice)",
              file=stream, flush=True)

    def _holds_current_file(self, file):
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(file.fileno())
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self):
        if self.file is not None:
            self.path.unlink(missing_ok=True)  # while still held: see the class docstring
            self.file.close()  # closing drops the lock
            self.file = None
            OutputLock.held.discard(self.key)


class ChunkStore:
    """Chunks [start, stop) of an N-image job, kept as .npy files beside the final output. Use it
    as a context manager: leaving the block releases the output's lock, also on an error."""

    def __init__(self, output: Path, n: int, chunk: int, settings: dict):
        self.output = Path(output)
        self.n, self.chunk = n, max(1, int(chunk))
        self.folder = self.output.with_name(self.output.name + ".parts")
        self.settings = {**settings, "n": n, "chunk": self.chunk}
        self.lock = OutputLock(self.output)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lock.release()
        return False

    def ranges(self):
        return [(a, min(a + self.chunk, self.n)) for a in range(0, self.n, self.chunk)]

    def _path(self, start, stop):
        return self.folder / f"{start:08d}-{stop:08d}.npy"

    def open(self):
        """Create the parts folder, or check that the one on disk was made with the same settings.
        A folder whose manifest is unreadable (a damaged disk, a hand edit) cannot be trusted:
        it is removed and the work starts over."""
        manifest = self.folder / "settings.json"
        if manifest.exists():
            try:
                on_disk = json.loads(manifest.read_text())
            except ValueError:
                shutil.rmtree(self.folder)
                on_disk = None
            if on_disk is not None and on_disk != self.settings:
                differ = sorted(k for k in set(on_disk) | set(self.settings) if on_disk.get(k) != self.settings.get(k))
                raise UserError(
                    f"{self.folder} holds partial results made with other settings ({', '.join(differ)}: "
                    f"{', '.join(f'{k}={on_disk.get(k)!r}' for k in differ)}); rerun with those settings to finish "
                    f"them, or delete the folder (rm -r '{self.folder}') to start over with these")
            if on_disk is not None:
                return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(self.settings, sort_keys=True))

    def claim(self, dist: Distributed):
        """Take the output's lock (rank 0, for the whole launch), open the parts folder on every
        rank and return this rank's pending chunks; no rank writes a chunk before all have listed
        theirs (else a chunk could go unclaimed). None when the output exists once the lock is
        taken (the process waited for wrote it): the job is over, lock and process group closed."""
        if dist.main:
            self.lock.acquire()
        dist.barrier()
        if self.output.exists():  # every rank sees it alike: rank 0 holds the lock
            if dist.main:
                print(f"{self.output} was written by the process this one waited for; not recomputed")
            self.lock.release()
            dist.close()
            return None
        if dist.main:
            self.open()
        dist.barrier()
        self.open()
        todo = self.pending(dist.rank, dist.world)
        dist.barrier()
        return todo

    def pending(self, rank=0, world=1):
        """This rank's chunks that are not on disk yet, or are damaged there (removed, to be
        recomputed: never loaded)."""
        mine = self.ranges()[rank::world]
        return [(a, b) for a, b in mine if not self._intact(a, b)]

    def _intact(self, start, stop):
        path = self._path(start, stop)
        if not path.exists():
            return False
        try:
            ok = len(np.load(path, mmap_mode="r")) == stop - start
        except Exception:
            ok = False
        if not ok:
            path.unlink()
        return ok

    def save(self, start, stop, array):
        save_npy(np.ascontiguousarray(array), self._path(start, stop))

    def load(self, start, stop):
        try:
            return np.load(self._path(start, stop))
        except Exception:
            os.unlink(self._path(start, stop))
            raise UserError(f"a partial result in {self.folder} was corrupt and is removed; rerun to recompute it") from None

    def complete(self):
        return all(self._path(a, b).exists() for a, b in self.ranges())

    def assemble(self):
        """All chunks joined along the first axis."""
        return np.concatenate([self.load(a, b) for a, b in self.ranges()])

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def finish(self, dist: Distributed, write):
        """The epilogue of a chunked job: wait for every rank; on rank 0 check that every chunk is
        on disk, join them, `write(array)` the output, remove the chunks and release the lock.
        Returns what write returned on rank 0, None on the other ranks."""
        dist.barrier()
        result = None
        if dist.main:
            if not self.complete():
                raise UserError(f"some chunks in {self.folder} are missing (a rank failed?); rerun to finish them")
            result = write(self.assemble())
            self.remove()
            self.lock.release()
        dist.close()
        return result
