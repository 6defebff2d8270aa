"""Estimator wrappers of ours: the ones saved models hold (pickled by their class path: keep it stable), and the
one each cross-validation fold fits, which a Dask worker unpickles (docs/cluster.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
from joblib import parallel_config
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted


class ClippedRegressor(MetaEstimatorMixin, RegressorMixin, BaseEstimator):
    """A regressor whose predictions are clipped to the range of the target it was fitted on.

    Boosted trees add up corrections and can predict beyond any value seen (above the census's
    $500,001 cap, for instance); a prediction outside the training range is never better than its edge.
    """

    def __init__(self, regressor: BaseEstimator) -> None:
        self.regressor = regressor

    def fit(self, X, y) -> ClippedRegressor:
        y = np.asarray(y, dtype=float)
        self.regressor_ = clone(self.regressor).fit(X, y)
        self.target_min_, self.target_max_ = float(y.min()), float(y.max())
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "regressor_")
        return np.clip(self.regressor_.predict(X), self.target_min_, self.target_max_)


def _inner_has(method: str) -> Any:
    return lambda fold: hasattr(fold.estimator, method)


class FoldModel(MetaEstimatorMixin, BaseEstimator):
    """What one fold of a cross-validation or search fits and scores: `estimator`, with every joblib call inside
    it (a vote's members, a forest's trees) run in the fold itself, one after another. Never saved: a stage saves
    the estimator it fits on the whole training split.

    A fold that runs in the stage's threads or processes already runs its inner calls one after another. One that
    runs on a Dask worker runs under joblib's Dask backend, which would send each inner call to the cluster as a
    task of its own, whatever its `n_jobs` (joblib/joblib#1013): the fold would no longer compute as it does in
    the stage."""

    def __init__(self, estimator: BaseEstimator) -> None:
        self.estimator = estimator

    def fit(self, X, y=None, **fit_params: Any) -> FoldModel:
        with parallel_config(backend="sequential"):
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        with parallel_config(backend="sequential"):
            return self.estimator_.predict(X)

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        with parallel_config(backend="sequential"):
            return self.estimator_.predict_proba(X)

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator_.classes_

    def __sklearn_tags__(self) -> Any:
        return self.estimator.__sklearn_tags__()
