"""monitoring/performance.py's intervals against scipy and a hand computation, and the running moments they are
computed from (the CLI over a simulated feedback stream: tests/service/test_performance_cli.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitoring.performance import paired_interval, welch_interval
from monitoring.tallies import Moments


def test_the_paired_interval_is_the_normal_approximation() -> None:
    differences = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sd sqrt(5/3)
    interval = paired_interval(Moments.of(differences), 0.95)
    half = 1.959963984540054 * math.sqrt(5 / 3) / 2
    assert interval.n == 4 and interval.difference == 2.5
    assert interval.low == pytest.approx(2.5 - half, rel=1e-12)
    assert interval.high == pytest.approx(2.5 + half, rel=1e-12)
    assert paired_interval(Moments.of(np.zeros(10)), 0.95).low == 0.0  # identical arms: the interval is [0, 0]


def test_the_welch_interval_agrees_with_scipy() -> None:
    rng = np.random.default_rng(3)
    challenger, champion = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 3.0, 70)
    interval = welch_interval(Moments.of(challenger), Moments.of(champion), 0.9)
    expected = stats.ttest_ind(challenger, champion, equal_var=False).confidence_interval(0.9)
    assert interval.difference == pytest.approx(challenger.mean() - champion.mean())
    assert (interval.low, interval.high) == (pytest.approx(expected.low), pytest.approx(expected.high))


def test_moments_merged_chunk_by_chunk_are_numpys_over_the_whole_array() -> None:
    """Squared errors of dollar predictions (values near 1e10): the chunked mean and variance stay exact where a sum
    of squares would cancel."""
    rng = np.random.default_rng(4)
    values = (rng.normal(250_000, 80_000, 10_001) - rng.normal(250_000, 80_000, 10_001)) ** 2
    moments = Moments()
    for chunk in np.array_split(values, 37):
        moments.add(chunk)
    moments.add(np.array([]))
    assert moments.n == len(values)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.variance == pytest.approx(values.var(ddof=1), rel=1e-10)
    assert Moments.of(np.array([3.0])).variance == 0.0
