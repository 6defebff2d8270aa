"""The champion rule: best CV score within the cost budget, ties to the cheaper model, then to the name;
the cost is counted from the fitted model, so the same models give the same champion on any machine."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from domain.estimators import ClippedRegressor
from stages.champion import choose_champion, prediction_cost


def _candidate(score: float, splits: int, metric: str = "r2") -> dict:
    return {"cv": {metric: {"mean": score, "std": 0.01}}, "cost": {"splits_per_row": splits}}


def test_best_cv_score_wins() -> None:
    candidates = {"a": _candidate(0.80, 1), "b": _candidate(0.85, 2), "c": _candidate(0.70, 1)}
    assert choose_champion(candidates, "r2", None) == "b"


def test_cost_budget_excludes_expensive_candidates() -> None:
    candidates = {"cheap": _candidate(0.80, 100), "costly": _candidate(0.90, 40_000)}
    assert choose_champion(candidates, "r2", 25_000) == "cheap"
    assert choose_champion(candidates, "r2", 50_000) == "costly"


def test_lower_is_better_for_error_metrics() -> None:
    candidates = {"a": _candidate(50_000, 1, "rmse"), "b": _candidate(40_000, 1, "rmse")}
    assert choose_champion(candidates, "rmse", None) == "b"


def test_ties_go_to_the_cheaper_candidate_then_to_the_name() -> None:
    candidates = {"forest": _candidate(0.97, 900, "accuracy"), "lda": _candidate(0.97, 0, "accuracy"),
                  "knn": _candidate(0.97, 0, "accuracy")}
    assert choose_champion(candidates, "accuracy", None) == "knn"
    del candidates["knn"]
    assert choose_champion(candidates, "accuracy", None) == "lda"


def test_nothing_within_budget_falls_back_to_the_cheapest() -> None:
    candidates = {"a": _candidate(0.9, 300), "b": _candidate(0.8, 260)}
    assert choose_champion(candidates, "r2", 100) == "b"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        choose_champion({}, "r2", None)


def test_cost_counts_the_splits_a_row_passes_in_every_tree() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 4)), rng.normal(size=300)
    tree = DecisionTreeRegressor(max_depth=5, random_state=0).fit(X, y)
    forest = RandomForestRegressor(n_estimators=7, max_depth=4, random_state=0).fit(X, y)
    hgb = HistGradientBoostingRegressor(max_iter=9, max_depth=3, random_state=0).fit(X, y)
    boosted = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, rng.integers(0, 3, 300))
    assert prediction_cost(tree) == {"splits_per_row": 5}
    assert prediction_cost(forest)["splits_per_row"] == sum(t.tree_.max_depth for t in forest.estimators_) <= 28
    assert prediction_cost(hgb)["splits_per_row"] == 9 * 3
    assert prediction_cost(boosted)["splits_per_row"] == 4 * 3 * 2  # a tree per class and stage
    wrapped = make_pipeline(StandardScaler(), ClippedRegressor(DecisionTreeRegressor(max_depth=5, random_state=0)))
    assert prediction_cost(wrapped.fit(X, y)) == {"splits_per_row": 5}
    assert prediction_cost(LinearRegression().fit(X, y)) == {"splits_per_row": 0}
