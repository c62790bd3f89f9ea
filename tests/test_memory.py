"""Rows per model call from a CUDA memory budget (the arithmetic here; the measurement in
test_cuda.py)."""
import pytest
import torch

from conftest import make_tiny_cnn
from utils import MAX_AUTO_ROWS, auto_rows, rows_within

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


def test_auto_rows_leaves_cpu_to_the_methods():
    assert auto_rows(make_tiny_cnn(), (3, 16, 16), torch.device("cpu"), grad=True) is None
