"""The promotion gate's decision (stages/promote.py `decide`): a pure function of two scored models."""

from __future__ import annotations

import pytest

from stages.promote import Scored, decide

CHAMPION = Scored("hgb", "a" * 32, 0.80)


def test_an_empty_registry_promotes_the_first_model() -> None:
    decision = decide(Scored("hgb", "b" * 32, 0.10), None, "r2", 0.01)
    assert (decision.decision, decision.promotes) == ("first", True)


def test_a_better_newcomer_is_promoted() -> None:
    decision = decide(Scored("forest", "b" * 32, 0.85), CHAMPION, "r2", 0.01)
    assert decision.decision == "promoted" and "better" in decision.reason


def test_a_worse_newcomer_is_kept_out_with_the_reason() -> None:
    decision = decide(Scored("linear", "b" * 32, 0.70), CHAMPION, "r2", 0.01)
    assert (decision.decision, decision.promotes) == ("kept", False)
    assert "worse by 0.1000" in decision.reason and "tolerance 0.01" in decision.reason


@pytest.mark.parametrize(("score", "expected"), [(0.75, "promoted"), (0.7499, "kept")])
def test_the_tolerance_is_inclusive(score: float, expected: str) -> None:
    assert decide(Scored("linear", "b" * 32, score), Scored("hgb", "a" * 32, 1.0), "r2", 0.25).decision == expected


def test_the_tolerance_edge_survives_float_rounding() -> None:
    # 0.85 - 0.86 is -0.010000000000000009 in floating point: still "not worse by more than 0.01"
    assert decide(Scored("tree", "b" * 32, 0.85), Scored("hgb", "a" * 32, 0.86), "r2", 0.01).decision == "promoted"


def test_a_lower_is_better_metric_is_compared_the_other_way() -> None:
    incumbent = Scored("hgb", "a" * 32, 50_000.0)
    assert decide(Scored("forest", "b" * 32, 45_000.0), incumbent, "rmse", 0.0).decision == "promoted"
    assert decide(Scored("forest", "b" * 32, 55_000.0), incumbent, "rmse", 1000.0).decision == "kept"
    assert decide(Scored("forest", "b" * 32, 50_500.0), incumbent, "rmse", 1000.0).decision == "promoted"


def test_the_same_model_is_kept_and_a_rolled_back_one_never_returns_by_itself() -> None:
    assert decide(Scored("hgb", "a" * 32, 0.80), CHAMPION, "r2", 0.01).decision == "kept"
    rolled_back = decide(Scored("forest", "b" * 32, 0.99), CHAMPION, "r2", 0.01, rolled_back=True)
    assert rolled_back.decision == "kept" and "rolled back" in rolled_back.reason


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        decide(Scored("forest", "b" * 32, 0.9), CHAMPION, "r2", -0.1)
