"""Rows per model call from a CUDA memory budget (the arithmetic here; the measurement in
test_cuda.py)."""
import pytest
import torch

from conftest import make_tiny_cnn
from labench.compute.memory import MAX_AUTO_ROWS, auto_rows, rows_within

MB = 2**20


@pytest.mark.parametrize("free, fixed, per_row, expected", [
    (1000 * MB, 100 * MB, 10 * MB, 32),  # 0.7 * 1000 - 100 = 600 MB -> 60 rows -> 32
    (1000 * MB, 0, 10 * MB, 64),  # 70 rows -> 64
    (1000 * MB, 0, 700 * MB / 64, 64),  # exactly 64 rows fit
    (1000 * MB, 0, 700 * MB / 63.9, 32),  # one byte short of 64
    (1000 * MB, 900 * MB, 10 * MB, 1),  # nothing fits: still one row (the call reports OOM itself)
    (10**15, 0, 1, MAX_AUTO_ROWS),  # capped
])
def test_rows_within_budget(free, fixed, per_row, expected):
    assert rows_within(free, fixed, per_row) == expected


def test_rows_within_respects_budget_and_cap():
    assert rows_within(1000 * MB, 0, 10 * MB, budget=0.5) == 32
    assert rows_within(1000 * MB, 0, 10 * MB, cap=16) == 16


def test_metric_batches_hold_whole_curves():
    from saliency.metric import whole_curves

    assert whole_curves(1024) == 900 and whole_curves(225) == 225 and whole_curves(100) == 100
    assert whole_curves(64, n_steps=9) == 60


def test_auto_rows_leaves_cpu_to_the_methods():
    assert auto_rows(make_tiny_cnn(), (3, 16, 16), torch.device("cpu"), grad=True) is None


def fake_cuda(monkeypatch, peak, free):
    """Stand-ins for the CUDA calls auto_rows makes: peak(rows, grad) bytes per probe call."""
    from labench.compute import memory

    calls = []

    def peak_pass_bytes(model, rows, image_shape, device, grad):
        calls.append((rows, grad))
        return peak(rows, grad)

    monkeypatch.setattr(memory, "peak_pass_bytes", peak_pass_bytes)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    return calls


def test_auto_rows_fits_a_line_through_two_probe_calls(monkeypatch):
    # 50 MB fixed + 20 MB per row (grad) or 5 MB per row (forward), 1000 MB free:
    # grad: (700 - 50) / 20 = 32.5 -> 32; forward: 650 / 5 = 130 -> 128; DeepLIFT units: 650 / 40 -> 16
    calls = fake_cuda(monkeypatch, lambda rows, grad: (50 + (20 if grad else 5) * rows) * MB, 1000 * MB)
    assert auto_rows(None, (3, 8, 8), "cuda", grad=True) == 32
    assert calls == [(8, True), (24, True)]
    assert auto_rows(None, (3, 8, 8), "cuda", grad=False) == 128
    assert auto_rows(None, (3, 8, 8), "cuda", grad=True, rows_per_unit=2) == 16


def test_auto_rows_probes_smaller_after_out_of_memory(monkeypatch):
    def peak(rows, grad):
        if rows > 3:
            raise torch.OutOfMemoryError("probe too large")
        return (100 + 300 * rows) * MB

    calls = fake_cuda(monkeypatch, peak, 1000 * MB)
    assert auto_rows(None, (3, 8, 8), "cuda", grad=True) == 2  # (700 - 100) / 300
    assert calls == [(8, True), (1, True), (3, True)]


def test_auto_rows_names_the_fix_when_nothing_fits(monkeypatch):
    from labench.errors import UserError

    def peak(rows, grad):
        raise torch.OutOfMemoryError("no memory")

    fake_cuda(monkeypatch, peak, 10 * MB)
    with pytest.raises(UserError, match="--device cpu"):
        auto_rows(None, (3, 8, 8), "cuda", grad=True)
