"""Progress in a log is a few plain lines; in a terminal it stays tqdm's bar."""
import io

from labench.compute.progress import EVERY_SECONDS, STEP_PERCENT, LogProgress, progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_line_every_few_percent_and_no_carriage_return():
    log, clock = io.StringIO(), Clock()
    with progress(28800, "insertion/deletion", "img", stream=log, clock=clock) as bar:  # a metric run's updates
        assert isinstance(bar, LogProgress)
        for _ in range(28800):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 100 // STEP_PERCENT  # 5%, 10%, ... 95%, then the closing line
    assert lines[0] == f"insertion/deletion: 1440/28800 img ({STEP_PERCENT}%), 0 s"
    assert lines[-1] == "insertion/deletion: 28800/28800 img (100%), 0 s"


def test_a_slow_run_also_gets_a_line_every_30_seconds():
    log, clock = io.StringIO(), Clock()
    with progress(1000, "la resnet50", "img", stream=log, clock=clock) as bar:
        for _ in range(30):  # 3% of the work in 300 s: no percent step crossed
            clock.now += 10
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert len(lines) == 300 // EVERY_SECONDS + 1
    assert lines[0] == "la resnet50: 3/1000 img (0%), 30 s"
    assert lines[-1] == "la resnet50: 30/1000 img (3%), 300 s"  # an interrupted run says how far it got


def test_a_terminal_keeps_the_bar_and_a_disabled_counter_prints_nothing():
    terminal = Terminal()
    with progress(10, "la", "img", stream=terminal) as bar:
        bar.update(10)
    assert "\r" in terminal.getvalue() and "10/10" in terminal.getvalue()
    for stream in (io.StringIO(), Terminal()):
        with progress(10, "la", "img", disable=True, stream=stream) as bar:
            bar.update(10)
        assert stream.getvalue() == ""


def test_nothing_to_do_prints_nothing():
    log = io.StringIO()
    with progress(0, "la", "img", stream=log):
        pass
    assert log.getvalue() == ""
