"""The champion rule: a pure function of CV scores and a deterministic cost of each model.

Rule (params.yaml `<task>.champion`): among the candidates whose cost is within `max_splits_per_row`
(if set), the best mean CV `metric` on the training split wins; ties go to the cheaper model, then to
the name. If no candidate is within the budget, the cheapest wins, so the pipeline still ships a model.
Test scores are never read.

The cost is what a prediction has to do, counted from the fitted model rather than timed: the
worst-case number of tree splits one row passes through (the sum of every tree's depth; 0 for linear
models). Timings differ between machines and runs, so a measured latency could crown a different
champion on a slower machine; this count is the same everywhere.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from stages.scoring import LOWER_IS_BETTER


def _tree_depths(model: Any) -> int:
    """Sum of the depths of every decision tree inside `model` (pipelines and ensembles unwrapped)."""
    if hasattr(model, "steps"):  # Pipeline
        return sum(_tree_depths(step) for _, step in model.steps)
    if hasattr(model, "regressor_"):  # ClippedRegressor
        return _tree_depths(model.regressor_)
    if hasattr(model, "_predictors"):  # HistGradientBoosting*: one TreePredictor per iteration and class
        return sum(int(tree.nodes["depth"].max()) for trees in model._predictors for tree in trees)
    if hasattr(model, "tree_"):  # DecisionTree*
        return int(model.tree_.max_depth)
    if hasattr(model, "estimators_"):  # forests, voting ensembles, gradient boosting (a 2-D array of trees)
        members = model.estimators_
        members = members.ravel() if hasattr(members, "ravel") else members
        return sum(_tree_depths(member) for member in members)
    return 0


def prediction_cost(model: BaseEstimator) -> dict[str, int]:
    """{"splits_per_row": worst-case tree splits per predicted row}: deterministic for a fitted model."""
    return {"splits_per_row": _tree_depths(model)}


def choose_champion(candidates: dict[str, dict[str, Any]], metric: str, max_splits_per_row: int | None) -> str:
    """The champion's name among `candidates` ({name: {"cv": {metric: {"mean"}}, "cost": {"splits_per_row"}}})."""
    if not candidates:
        raise ValueError("no candidates to choose from")

    def cost(name: str) -> int:
        return candidates[name]["cost"]["splits_per_row"]

    eligible = [name for name in sorted(candidates) if max_splits_per_row is None or cost(name) <= max_splits_per_row]
    if not eligible:
        return min(sorted(candidates), key=cost)
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return max(eligible, key=lambda name: (sign * candidates[name]["cv"][metric]["mean"], -cost(name)))
