"""Build a candidate model (a scikit-learn Pipeline) from its block in params.yaml.

A candidate block names an estimator from ESTIMATORS and its hyperparameters, e.g.::

    hgb:
      estimator: hist_gradient_boosting_regressor
      seeds: 5            # average this many differently-seeded copies
      hyperparams: {learning_rate: 0.05, max_iter: 800}

Adding a candidate is adding a block: the DVC stage list is generated from the keys. A block may also
carry a ``search`` block: its hyperparameters are then tuned by CV first (stages/tuning.py).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from domain.estimators import ClippedRegressor
from domain.schema import SCHEMAS, CategoryField, TaskSchema

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "linear_regression": LinearRegression,
    "ridge": Ridge,
    "decision_tree_regressor": DecisionTreeRegressor,
    "random_forest_regressor": RandomForestRegressor,
    "hist_gradient_boosting_regressor": HistGradientBoostingRegressor,
    "logistic_regression": LogisticRegression,
    "linear_discriminant_analysis": LinearDiscriminantAnalysis,
    "decision_tree_classifier": DecisionTreeClassifier,
    "random_forest_classifier": RandomForestClassifier,
    "gradient_boosting_classifier": GradientBoostingClassifier,
    "hist_gradient_boosting_classifier": HistGradientBoostingClassifier,
}


def build_estimator(spec: dict[str, Any], seed: int) -> BaseEstimator:
    """The bare estimator of a candidate block, seeded; several seeds are averaged. Regressors predict
    within the training target's range."""
    name = spec.get("estimator")
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {', '.join(sorted(ESTIMATORS))}")
    estimator = ESTIMATORS[name](**(spec.get("hyperparams") or {}))
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    seeds = int(spec.get("seeds", 1))
    regressor = name.endswith("_regressor")
    if seeds > 1:
        if not regressor:
            raise ValueError(f"seeds > 1 (seed averaging) is only supported for regressors, not {name}")
        estimator = VotingRegressor([(f"seed_{i}", clone(estimator).set_params(random_state=seed + i))
                                     for i in range(seeds)])
    return ClippedRegressor(estimator) if regressor else estimator


def feature_transformer(task: str) -> type[TransformerMixin] | None:
    """The task's feature step class (domain/schema.py `feature_transformer`), imported on demand."""
    name = SCHEMAS[task].feature_transformer
    if not name:
        return None
    module, cls = name.split(":")
    return getattr(import_module(module), cls)


def tabular_features(schema: TaskSchema) -> ColumnTransformer | None:
    """The feature step of a task that declares no feature_transformer but has category or optional fields:
    missing numbers imputed by the training median, categories one-hot encoded in the declared order (a missing
    or unknown one: all zeros). None when every field is a required number: the estimator takes them as they are."""
    categories = [spec for spec in schema.features if isinstance(spec, CategoryField)]
    numeric = [spec.name for spec in schema.features if not isinstance(spec, CategoryField)]
    if not categories and not any(getattr(spec, "nullable", False) for spec in schema.features):
        return None
    return ColumnTransformer([
        ("numeric", SimpleImputer(strategy="median"), numeric),
        ("category", OneHotEncoder(categories=[list(spec.categories) for spec in categories],
                                   handle_unknown="ignore", sparse_output=False), [spec.name for spec in categories]),
    ], verbose_feature_names_out=False)


def build_pipeline(task: str, spec: dict[str, Any], features: dict[str, Any], seed: int) -> Pipeline:
    """Raw fields in, prediction out: the task's feature step (its declared one, else `tabular_features` where
    needed), optional scaling, estimator."""
    steps: list[tuple[str, Any]] = []
    transformer = feature_transformer(task)
    if transformer is not None:
        steps.append(("features", transformer(**features, random_state=seed)))
    elif (tabular := tabular_features(SCHEMAS[task])) is not None:
        steps.append(("features", tabular))
    if spec.get("scale", False):
        steps.append(("scale", StandardScaler()))
    steps.append(("model", build_estimator(spec, seed)))
    return Pipeline(steps)


# Estimators whose fit holds the GIL most of the time (HistGradientBoosting runs a Python loop per boosting
# iteration): their CV folds run in worker processes. Every other estimator's folds run in threads, which start
# at once, where a process pool costs more to start than the whole CV of a linear model (bench/NOTES.md).
GIL_BOUND_ESTIMATORS = frozenset({"hist_gradient_boosting_regressor", "hist_gradient_boosting_classifier"})


def fold_backend(spec: dict[str, Any]) -> str:
    """joblib backend for running a candidate's CV folds in parallel: "loky" (processes) or "threading"."""
    return "loky" if spec.get("estimator") in GIL_BOUND_ESTIMATORS else "threading"
