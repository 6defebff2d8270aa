"""Scores of a model: metrics per task, cross-validation, and (for reports) prediction latency.

Pure functions over arrays and fitted estimators, so tests call them directly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from threadpoolctl import threadpool_limits

from domain.estimators import FoldModel
from domain.schema import SCHEMAS, Kind
from stages.fits import fold_parallelism

REGRESSION_SCORING = {"r2": "r2", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}
CLASSIFICATION_SCORING = {"accuracy": "accuracy", "f1_macro": "f1_macro"}
# Metrics where lower is better; used by the champion rule.
LOWER_IS_BETTER = {"rmse", "mae"}


def score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Held-out metrics. Regression: r2, rmse, mae (target units). Classification: accuracy,
    f1_macro and per-class precision and recall."""
    if SCHEMAS[task].kind is Kind.REGRESSION:
        return {
            "r2": float(skm.r2_score(y_true, y_pred)),
            "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        }
    labels = sorted(set(y_true) | set(y_pred))
    precision, recall, _, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1_macro": float(skm.f1_score(y_true, y_pred, average="macro")),
        "precision": {label: float(p) for label, p in zip(labels, precision, strict=True)},
        "recall": {label: float(r) for label, r in zip(labels, recall, strict=True)},
    }


def cv_plan(task: str, y: Any, folds: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """(splitter, scorers) of the task's cross-validation: shuffled K-fold for regression, stratified for
    classes. Scorer names "precision/<label>" hold one class's score."""
    if SCHEMAS[task].kind is Kind.REGRESSION:
        return KFold(folds, shuffle=True, random_state=seed), dict(REGRESSION_SCORING)
    scoring: dict[str, Any] = dict(CLASSIFICATION_SCORING)
    for label in sorted(set(y)):
        for name, metric in (("precision", skm.precision_score), ("recall", skm.recall_score)):
            scoring[f"{name}/{label}"] = skm.make_scorer(metric, labels=[label], average="macro", zero_division=0)
    return StratifiedKFold(folds, shuffle=True, random_state=seed), scoring


def summarise_folds(scoring: dict[str, Any], fold_scores: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Mean and std over the folds of each scorer, errors back to positive ("neg_" scorers), per-class scores
    nested as {"precision": {label: {"mean", "std"}}} (the shape of `score`'s per-class metrics)."""
    out: dict[str, dict[str, Any]] = {}
    for name, scorer in scoring.items():
        values = np.asarray(fold_scores[name], dtype=float)
        values = -values if isinstance(scorer, str) and scorer.startswith("neg_") else values
        stats = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        if "/" in name:
            metric, label = name.split("/", 1)
            out.setdefault(metric, {})[label] = stats
        else:
            out[name] = stats
    return out


def single_threaded(model: BaseEstimator) -> BaseEstimator:
    """Set every ``n_jobs`` in the model that asks for several jobs to 1: for predicting, and for each fold of a CV
    that runs folds in parallel.

    A forest predicting with several jobs adds its trees' predictions in whatever order the threads finish, so
    the last digits of its predictions (and scores) would change from run to run and with the number of cores;
    one job adds them in tree order. Fitting with several jobs stays deterministic (each tree has its own seed).
    The fitted clones inside meta-estimators (ClippedRegressor's `regressor_`, a vote's members) are set too.
    Single-row prediction is also faster: joblib's dispatch costs more than predicting one row.
    `n_jobs=None` (the default) already means one job and stays as it is: scikit-learn warns on any value set
    where the parameter is deprecated (LogisticRegression's since 1.8).
    """
    jobs = {key: 1 for key, value in model.get_params(deep=True).items()
            if (key == "n_jobs" or key.endswith("__n_jobs")) and value not in (None, 1)}
    if jobs:
        model.set_params(**jobs)
    for part in _fitted_parts(model):  # set_params reaches the templates, not the fitted clones (`regressor_`)
        if getattr(part, "n_jobs", None) not in (None, 1):
            part.n_jobs = 1
    return model


def _fitted_parts(model: Any) -> list[Any]:
    """The estimators a fitted model predicts with: pipeline steps, a meta-estimator's fitted `regressor_`, a
    vote's `estimators_` (not a forest's trees, which have no jobs)."""
    parts, todo = [], [model]
    while todo:
        part = todo.pop()
        parts.append(part)
        todo += [step for _, step in getattr(part, "steps", [])]
        if hasattr(part, "regressor_"):
            todo.append(part.regressor_)
        if hasattr(part, "estimators_") and not hasattr(part, "n_estimators"):  # a vote, not a forest
            todo += list(part.estimators_)
    return parts


def cross_validation(
    task: str, model: BaseEstimator, X: pd.DataFrame, y: np.ndarray, folds: int, seed: int, n_jobs: int = 1,
    backend: str = "loky",
) -> dict[str, dict[str, Any]]:
    """K-fold CV on the training split: mean and std of each metric (`cv_plan`, `summarise_folds`).

    Regression: r2, rmse, mae. Classification: accuracy, f1_macro, and per-class precision and recall.
    `n_jobs` folds run at once, in processes ("loky") or threads ("threading"): candidates.fold_backend; or on a
    Dask cluster (stages/fits.py).
    """
    splitter, scoring = cv_plan(task, y, folds, seed)
    with fold_parallelism(backend, (X, y)):
        result = cross_validate(FoldModel(single_threaded(clone(model))), X, y, cv=splitter, scoring=scoring,
                                n_jobs=n_jobs)
    return summarise_folds(scoring, {name: result[f"test_{name}"] for name in scoring})


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as flat names: {"r2": {"mean": m}} -> {"r2_mean": m}; per class -> "precision_setosa_mean"."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}_"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def flat_scores(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of `flatten(values)` as floats (MLflow metrics, tables of scores)."""
    return {name: float(value) for name, value in flatten(values, prefix).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def predict_latency(model: BaseEstimator, X: pd.DataFrame, single_repeats: int = 50) -> dict[str, float]:
    """Median wall time of predict on one row (ms) and on 1,000 rows (ms for the whole batch).

    For reports only (the candidate's MLflow run): it varies between machines and runs, so it never
    enters a cached output, a git-tracked metric or the champion rule (stages/champion.py).
    Measured with one thread per native pool, as the service runs.
    """
    with threadpool_limits(limits=1):
        return _predict_latency(model, X, single_repeats)


def _predict_latency(model: BaseEstimator, X: pd.DataFrame, single_repeats: int) -> dict[str, float]:
    rows = X.iloc[: min(len(X), 1000)]
    model.predict(rows.iloc[:1])  # warm-up: first call pays lazy initialisation
    single = []
    for i in range(single_repeats):
        one = rows.iloc[[i % len(rows)]]
        start = time.perf_counter()
        model.predict(one)
        single.append(time.perf_counter() - start)
    batch = []
    for _ in range(3):
        start = time.perf_counter()
        model.predict(rows)
        batch.append(time.perf_counter() - start)
    return {"single_row_ms": 1000 * float(np.median(single)), "batch_1000_ms": 1000 * float(np.median(batch))}
