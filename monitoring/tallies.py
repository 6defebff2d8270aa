"""Running statistics of per-record scores that arrive in chunks: what lets monitoring/performance.py judge a window
of any size in bounded memory.

`Moments` keeps n, the mean and the sum of squared deviations, merged chunk by chunk with Chan, Golub and
LeVeque's pairwise update (the same numbers as numpy on the whole array, to rounding, without the cancellation
of a sum of squares); `Tally` adds the mean absolute error a regression's report shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domain.schema import Kind


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of the values added so far."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        moments = cls()
        moments.add(values)
        return moments

    def add(self, values: np.ndarray) -> None:
        k = len(values)
        if not k:
            return
        mean = float(np.mean(values))
        m2 = float(np.sum((values - mean) ** 2))
        total = self.n + k
        delta = mean - self.mean
        self.mean += delta * k / total
        self.m2 += m2 + delta * delta * self.n * k / total
        self.n = total

    @property
    def variance(self) -> float:
        """The sample variance (ddof 1)."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


@dataclass
class Tally:
    """A group's scores (squared error or correctness) and, for regression, its absolute errors."""

    score: Moments = field(default_factory=Moments)
    abs_error: float = 0.0  # their sum

    def add(self, score: np.ndarray, abs_error: np.ndarray | None) -> None:
        self.score.add(score)
        if abs_error is not None:
            self.abs_error += float(np.sum(abs_error))

    def metrics(self, kind: Kind) -> dict[str, Any]:
        """n, RMSE and MAE (regression) or accuracy (classification)."""
        n = self.score.n
        if kind is Kind.REGRESSION:
            return {"n": n, "rmse": rounded(math.sqrt(self.score.mean)), "mae": rounded(self.abs_error / n)}
        return {"n": n, "accuracy": rounded(self.score.mean)}


def rounded(value: float) -> float:
    """Six decimals: what the reports print."""
    return round(float(value), 6)
