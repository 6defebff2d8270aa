"""FoldModel: a CV fold computes in itself whatever joblib backend is active around it, and scores as the bare
estimator does."""

from __future__ import annotations

import threading
import time

import numpy as np
from joblib import Parallel, delayed, parallel_config
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor, VotingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_validate

from domain.estimators import FoldModel


def _thread_after_a_nap() -> int:
    """The thread that ran this call; the nap keeps it busy, so a pool's other threads take the next calls."""
    time.sleep(0.02)
    return threading.get_ident()


class _RecordsThreads(RegressorMixin, BaseEstimator):
    """Fits and predicts through joblib calls that leave their jobs to the active backend, as a vote does."""

    def fit(self, X, y):
        self.fit_threads_ = set(Parallel()(delayed(_thread_after_a_nap)() for _ in range(8)))
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        self.predict_threads_ = set(Parallel()(delayed(_thread_after_a_nap)() for _ in range(8)))
        return np.full(len(X), self.mean_)


def test_inner_joblib_calls_run_in_the_fold_whatever_backend_is_active() -> None:
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20.0)
    with parallel_config(backend="threading", n_jobs=4):
        bare = _RecordsThreads().fit(X, y)
        bare.predict(X)
        fold = FoldModel(_RecordsThreads()).fit(X, y)
        fold.predict(X)
    assert len(bare.fit_threads_ | bare.predict_threads_) > 1  # the check can fail: the backend is active
    here = {threading.get_ident()}
    assert fold.estimator_.fit_threads_ == here and fold.estimator_.predict_threads_ == here


def test_a_fold_scores_exactly_as_the_bare_estimator() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(size=300)
    vote = VotingRegressor([(f"seed_{i}", RandomForestRegressor(n_estimators=10, random_state=i)) for i in range(2)])
    splitter = KFold(5, shuffle=True, random_state=0)
    bare = cross_validate(vote, X, y, cv=splitter, scoring="neg_root_mean_squared_error")["test_score"]
    fold = cross_validate(FoldModel(vote), X, y, cv=splitter, scoring="neg_root_mean_squared_error")["test_score"]
    assert bare.tobytes() == fold.tobytes()

    labels = (y > 0).astype(int)
    classifier = LogisticRegression(max_iter=500)
    scores = [cross_validate(model, X, labels, cv=splitter, scoring=["accuracy", "roc_auc"])
              for model in (classifier, FoldModel(classifier))]
    for name in ("test_accuracy", "test_roc_auc"):
        assert scores[0][name].tobytes() == scores[1][name].tobytes()
