"""Estimator wrappers of ours that saved models hold (pickled by their class path: keep it stable)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
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
