"""The champion rule: best CV score within the latency budget, ties to the faster model."""

from __future__ import annotations

import pytest

from stages.scoring import choose_champion


def _candidate(score: float, ms: float, metric: str = "r2") -> dict:
    return {"cv": {metric: {"mean": score, "std": 0.01}}, "latency": {"single_row_ms": ms}}


def test_best_cv_score_wins() -> None:
    candidates = {"a": _candidate(0.80, 1), "b": _candidate(0.85, 2), "c": _candidate(0.70, 1)}
    assert choose_champion(candidates, "r2", None) == "b"


def test_latency_budget_excludes_slow_candidates() -> None:
    candidates = {"fast": _candidate(0.80, 1), "slow": _candidate(0.90, 40)}
    assert choose_champion(candidates, "r2", 25) == "fast"
    assert choose_champion(candidates, "r2", 50) == "slow"


def test_lower_is_better_for_error_metrics() -> None:
    candidates = {"a": _candidate(50_000, 1, "rmse"), "b": _candidate(40_000, 1, "rmse")}
    assert choose_champion(candidates, "rmse", None) == "b"


def test_ties_go_to_the_faster_candidate() -> None:
    candidates = {"slow": _candidate(0.97, 9, "accuracy"), "quick": _candidate(0.97, 1, "accuracy")}
    assert choose_champion(candidates, "accuracy", None) == "quick"


def test_nothing_within_budget_falls_back_to_the_fastest() -> None:
    candidates = {"a": _candidate(0.9, 30), "b": _candidate(0.8, 26)}
    assert choose_champion(candidates, "r2", 25) == "b"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        choose_champion({}, "r2", None)
