"""The promotion gate's decision (stages/promote.py `decide`): a pure function of two scored models."""

from __future__ import annotations

import pytest

from stages.promote import Scored, Unseen, decide, perfect_cv
from stages.rollback import further_back

CHAMPION = Scored("hgb", "a" * 32, 0.80)


def test_an_empty_registry_promotes_the_first_model() -> None:
    decision = decide(Scored("hgb", "b" * 32, 0.10), None, "r2", 0.01)
    assert (decision.verdict, decision.promotes) == ("would promote", True)
    assert "no model holds the champion alias" in decision.reason


def test_a_better_newcomer_is_promoted() -> None:
    decision = decide(Scored("forest", "b" * 32, 0.85), CHAMPION, "r2", 0.01)
    assert decision.verdict == "would promote" and "better" in decision.reason


def test_a_worse_newcomer_is_kept_out_with_the_reason() -> None:
    decision = decide(Scored("linear", "b" * 32, 0.70), CHAMPION, "r2", 0.01)
    assert (decision.verdict, decision.promotes) == ("would keep", False)
    assert "worse by 0.1000" in decision.reason and "tolerance 0.01" in decision.reason


@pytest.mark.parametrize(("score", "expected"), [(0.75, "would promote"), (0.7499, "would keep")])
def test_the_tolerance_is_inclusive(score: float, expected: str) -> None:
    assert decide(Scored("linear", "b" * 32, score), Scored("hgb", "a" * 32, 1.0), "r2", 0.25).verdict == expected


def test_the_tolerance_edge_survives_float_rounding() -> None:
    # 0.85 - 0.86 is -0.010000000000000009 in floating point: still "not worse by more than 0.01"
    assert decide(Scored("tree", "b" * 32, 0.85), Scored("hgb", "a" * 32, 0.86), "r2", 0.01).verdict == "would promote"


def test_a_lower_is_better_metric_is_compared_the_other_way() -> None:
    incumbent = Scored("hgb", "a" * 32, 50_000.0)
    assert decide(Scored("forest", "b" * 32, 45_000.0), incumbent, "rmse", 0.0).verdict == "would promote"
    assert decide(Scored("forest", "b" * 32, 55_000.0), incumbent, "rmse", 1000.0).verdict == "would keep"
    assert decide(Scored("forest", "b" * 32, 50_500.0), incumbent, "rmse", 1000.0).verdict == "would promote"


def test_the_same_model_is_kept_and_a_rolled_back_one_never_returns_by_itself() -> None:
    assert decide(Scored("hgb", "a" * 32, 0.80), CHAMPION, "r2", 0.01).verdict == "would keep"
    rolled_back = decide(Scored("forest", "b" * 32, 0.99), CHAMPION, "r2", 0.01, rolled_back=True)
    assert rolled_back.verdict == "would keep" and "rolled back" in rolled_back.reason


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        decide(Scored("forest", "b" * 32, 0.9), CHAMPION, "r2", -0.1)


def test_an_incumbent_evaluated_on_another_split_is_compared_on_rows_neither_trained_on() -> None:
    """New raw data or split params: the incumbent may have trained on today's test rows, so its score there
    decides nothing; both are compared on the rows neither trained on, and without them the incumbent stays."""
    newcomer = Scored("forest", "b" * 32, 0.50)
    fair = decide(newcomer, CHAMPION, "r2", 0.01, comparable=False, unseen=Unseen(120, 0.82, 0.79))
    assert fair.verdict == "would promote" and "on the 120 test rows neither trained on, r2 0.8200" in fair.reason
    worse = decide(newcomer, CHAMPION, "r2", 0.01, comparable=False, unseen=Unseen(120, 0.70, 0.79))
    assert worse.verdict == "would keep" and "worse by 0.0900" in worse.reason
    blind = decide(newcomer, CHAMPION, "r2", 0.01, comparable=False, no_comparison="its training split is gone")
    assert blind.verdict == "would keep" and blind.reason.endswith("no fair comparison exists: its training split "
                                                                   "is gone")
    assert decide(Scored("hgb", "a" * 32, 0.80), CHAMPION, "r2", 0.01, comparable=False).verdict == "would keep"


def test_every_promotion_needs_the_floor_the_first_one_included() -> None:
    first = decide(Scored("stump", "b" * 32, 0.40), None, "r2", 0.01, floor=0.7)
    assert first.verdict == "refused" and "scores test r2 0.4000, below the floor 0.7" in first.reason
    kept = decide(Scored("stump", "b" * 32, 0.40), Scored("hgb", "a" * 32, 0.30), "r2", 0.01, floor=0.7)
    assert kept.verdict == "would keep" and "below the floor 0.7" in kept.reason
    assert decide(Scored("hgb", "b" * 32, 0.80), None, "r2", 0.01, floor=0.7).verdict == "would promote"
    assert decide(Scored("hgb", "b" * 32, 60_000.0), None, "rmse", 0.0, floor=50_000).verdict == "refused"


def test_a_perfect_cross_validation_with_no_spread_is_suspicious() -> None:
    assert perfect_cv({"r2": {"mean": 1.0, "std": 0.0}}, "r2")
    assert perfect_cv({"rmse": {"mean": 0.0, "std": 0.0}}, "rmse")
    assert not perfect_cv({"r2": {"mean": 1.0, "std": 0.001}}, "r2")
    assert not perfect_cv({"r2": {"mean": 0.88, "std": 0.0}}, "r2")


@pytest.mark.parametrize(("restored", "rolled_back", "tags", "expected"), [
    ("2", "3", {"2": {"previous_champion": "1"}, "1": {}}, "1"),  # 1 -> 2 -> 3, 3 rolled back: next is 1
    ("2", "3", {"2": {"previous_champion": "1"}, "1": {"rolled_back": "true"}}, None),
    ("3", "4", {"3": {"previous_champion": "2"}, "2": {"rolled_back": "true", "previous_champion": "1"}, "1": {}},
     "1"),  # a rolled-back version in the chain is skipped
    # 1 promoted, 2 promoted, 1 promoted again (it names 2), rolled back to 2: 2 names 1, the rolled-back one
    ("2", "1", {"1": {"previous_champion": "2"}, "2": {"previous_champion": "1"}}, None),
    ("2", "3", {"2": {}}, None),  # the first champion: nothing further back
])
def test_a_rollback_never_lines_up_a_rolled_back_or_looping_version(restored: str, rolled_back: str, tags: dict,
                                                                    expected: str | None) -> None:
    assert further_back(restored, rolled_back, lambda version: tags.get(version, {})) == expected
