"""Progress of a long loop: tqdm's bar in a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns many times a second; written into a log file (a
grid's logs, CI) that is thousands of updates on one physical line. When the stream is not a
terminal, a line is printed instead every STEP_PERCENT percent of the work or every
EVERY_SECONDS seconds, whichever comes first, and once at the end.
"""
from __future__ import annotations

import sys
import time

STEP_PERCENT = 5
EVERY_SECONDS = 30.0


def progress(total, desc, unit="it", disable=False, stream=None, clock=time.monotonic):
    """A progress counter with update(n) and close(), usable as a context manager: tqdm when
    `stream` (default: stderr) is a terminal, else LogProgress; disabled: prints nothing."""
    stream = sys.stderr if stream is None else stream
    if disable or _is_terminal(stream):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=stream)
    return LogProgress(total, desc, unit, stream, clock)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogProgress:
    """One line `desc: done/total unit (p%), elapsed s` at each STEP_PERCENT step crossed or
    EVERY_SECONDS since the last line, and at close: at most 100 / STEP_PERCENT + 1 lines plus
    one per EVERY_SECONDS of running time."""

    def __init__(self, total, desc, unit, stream, clock=time.monotonic):
        self.total, self.desc, self.unit, self.stream, self.clock = int(total), desc, unit, stream, clock
        self.done = 0
        self.started = self.last_time = clock()
        self.last_step = 0  # the last STEP_PERCENT step printed
        self.closed = False

    def update(self, n=1):
        self.done += n
        step = self._percent() // STEP_PERCENT
        now = self.clock()
        if self.done < self.total and (step > self.last_step or now - self.last_time >= EVERY_SECONDS):
            self._line(now)
            self.last_step = step

    def _percent(self):
        return 100 if self.total <= 0 else min(100, self.done * 100 // self.total)

    def _line(self, now):
        self.last_time = now
        print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({self._percent()}%), {now - self.started:.0f} s",
              file=self.stream, flush=True)

    def close(self):
        if not self.closed and self.total > 0:
            self._line(self.clock())
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
