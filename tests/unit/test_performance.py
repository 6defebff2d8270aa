"""monitoring/performance.py's intervals against scipy and a hand computation (the CLI over a simulated feedback
stream: tests/service/test_performance_cli.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitoring.performance import paired_interval, welch_interval


def test_the_paired_interval_is_the_normal_approximation() -> None:
    differences = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sd sqrt(5/3)
    interval = paired_interval(differences, 0.95)
    half = 1.959963984540054 * math.sqrt(5 / 3) / 2
    assert interval.n == 4 and interval.difference == 2.5
    assert interval.low == pytest.approx(2.5 - half, rel=1e-12)
    assert interval.high == pytest.approx(2.5 + half, rel=1e-12)
    assert paired_interval(np.zeros(10), 0.95).low == 0.0  # identical arms: the interval is [0, 0]


def test_the_welch_interval_agrees_with_scipy() -> None:
    rng = np.random.default_rng(3)
    challenger, champion = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 3.0, 70)
    interval = welch_interval(challenger, champion, 0.9)
    expected = stats.ttest_ind(challenger, champion, equal_var=False).confidence_interval(0.9)
    assert interval.difference == pytest.approx(challenger.mean() - champion.mean())
    assert (interval.low, interval.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
