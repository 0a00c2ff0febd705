"""Score formulas against worked examples (see docs/contest.md)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from clubstack.contest import scoring

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_performance_worked_example():
    # object 1 MiB of 16 MiB -> 4; RAM 1 MiB of 4 MiB -> 2; 3 ms of 3 s -> log2(1000)
    perf = scoring.performance(2**20, 2**24, 2**20, 2**22, 0.003, 3.0)
    assert perf == pytest.approx(1 + 4 + 2 + math.log2(1000))
    assert perf == pytest.approx(16.9658, abs=1e-4)


def test_performance_at_the_limits_is_one_and_zero_is_clamped():
    assert scoring.performance(10, 10, 5, 5, 3, 3) == 1.0
    assert scoring.performance(20, 10, 5, 5, 3, 3) == 1.0  # over a limit counts as the limit
    assert scoring.performance(10, 10, 5, 5, 0, 3) == pytest.approx(41.0)


def test_trimmed_mean_drops_five_lowest_and_highest():
    assert scoring.trimmed_mean(list(range(1, 21))) == 10.5
    assert scoring.trimmed_mean([1000, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]) == 1
    assert scoring.trimmed_mean([2, 4]) == 3
    assert scoring.trimmed_mean([]) == 0


def test_strawberries_grow_quadratically_while_unbroken():
    assert scoring.strawberries(2.0, T0, T0 + 2 * DAY) == pytest.approx(8.0)
    assert scoring.strawberries(2.0, T0, T0 + DAY / 2) == pytest.approx(0.5)
    assert scoring.strawberries(2.0, T0, T0 - DAY) == 0


def test_strawberries_fall_symmetrically_after_first_break():
    broke = T0 + 2 * DAY
    assert scoring.strawberries(2.0, T0, T0 + 3 * DAY, broke) == pytest.approx(2.0)
    assert scoring.strawberries(2.0, T0, T0 + 4 * DAY, broke) == 0
    assert scoring.strawberries(2.0, T0, T0 + 9 * DAY, broke) == 0
    assert scoring.peak_strawberries(2.0, T0, T0 + 3 * DAY, broke) == pytest.approx(8.0)


def test_strawberries_freeze_at_final_deadline():
    final = T0 + 1.5 * DAY
    assert scoring.strawberries(2.0, T0, T0 + 3 * DAY, None, final) == pytest.approx(4.5)
    assert scoring.strawberries(2.0, T0, T0 + 30 * DAY, None, final) == pytest.approx(4.5)


def test_bananas_keep_the_largest_break():
    assert scoring.bananas([3.0, 8.5, 1.0]) == 8.5
    assert scoring.bananas([3.0, 8.5], weight=0.5) == 4.25
    assert scoring.bananas([]) == 0
