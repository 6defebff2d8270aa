"""The hyperparameter search: seeded, reproducible, scored by the same CV as untuned candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.candidates import build_pipeline
from stages.fetch import write_sklearn_dataset
from stages.scoring import cross_validation
from stages.tuning import check_search, configurations, trials_table, tune
from tests.support.data_factory import housing_frame
from tests.support.tasks import HOUSING, IRIS

CV = {"folds": 3, "seed": 42, "n_jobs": 1}


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.Series]:
    path = tmp_path_factory.mktemp("iris") / "iris.csv"
    write_sklearn_dataset("iris", IRIS, path)
    frame = pd.read_csv(path)
    return frame[IRIS.feature_names], frame[IRIS.target.name]


def logreg(space: dict, n_iter: int = 10, **hyperparams) -> dict:
    return {
        "estimator": "logistic_regression",
        "scale": True,
        "hyperparams": {"C": 1.0, "max_iter": 1000, **hyperparams},
        "search": {"n_iter": n_iter, "seed": 0, "space": space},
    }


def test_configurations_start_with_the_base_and_are_distinct_and_seeded():
    base = {"learning_rate": 0.1, "max_iter": 100}
    search = {"n_iter": 4, "seed": 1, "space": {"learning_rate": [0.05, 0.1, 0.2], "max_leaf_nodes": [15, 31]}}
    trials = configurations(base, search)
    assert trials[0] == base
    assert len(trials) == 5 and all(t["max_iter"] == 100 for t in trials)
    assert len({tuple(sorted(t.items())) for t in trials}) == len(trials)
    assert configurations(base, search) == trials  # same seed, same trials
    assert configurations(base, {**search, "seed": 2}) != trials


def test_configurations_never_exceed_the_grid():
    search = {"n_iter": 50, "seed": 0, "space": {"C": [0.1, 1.0, 10.0]}}
    assert [t["C"] for t in configurations({"C": 1.0}, search)] == [1.0, 0.1, 10.0]


@pytest.mark.parametrize(("search", "message"), [
    ({"n_iter": 2, "seed": 0, "space": {"gamma": [1, 2]}}, "unknown hyperparameter"),
    ({"n_iter": 2, "seed": 0, "space": {"C": []}}, "non-empty lists"),
    ({"n_iter": 2, "seed": 0, "space": {"C": 1.0}}, "non-empty lists"),
    ({"n_iter": -1, "seed": 0, "space": {"C": [1.0]}}, "n_iter"),
    ({"n_iter": 2, "space": {"C": [1.0]}}, "seed"),
    ({"n_iter": 2, "seed": 0, "seeds": 0, "space": {"C": [1.0]}}, "seeds"),
])
def test_bad_search_blocks_are_rejected_with_a_clear_message(search, message):
    with pytest.raises(ValueError, match=message):
        check_search({"estimator": "logistic_regression", "search": search})


def test_the_best_trial_wins_and_its_scores_are_the_candidates_cv(iris):
    X, y = iris
    spec = logreg({"C": [0.01, 0.1, 1.0, 10.0]}, C=0.01)
    result = tune("iris", spec, {}, X, y, CV, "accuracy")

    means = [t["cv"]["accuracy"]["mean"] for t in result.trials]
    assert [t["hyperparams"]["C"] for t in result.trials] == [0.01, 0.1, 1.0, 10.0]
    assert result.best_trial == int(np.argmax(means))  # argmax: the first of equals, the base wins ties
    assert means[result.best_trial] > means[0]  # C=0.01 underfits: the search must move away from it
    assert result.best_hyperparams == {"C": result.trials[result.best_trial]["hyperparams"]["C"], "max_iter": 1000}
    refit = build_pipeline("iris", {**spec, "hyperparams": result.best_hyperparams}, {}, CV["seed"])
    assert cross_validation("iris", refit, X, y, CV["folds"], CV["seed"]) == result.best_cv
    for metric in ("precision", "recall"):  # per class, with its spread over the folds
        assert set(result.best_cv[metric]) == {"setosa", "versicolor", "virginica"}
        assert all(0 < s["mean"] <= 1 and s["std"] >= 0 for s in result.best_cv[metric].values())


def test_the_trials_table_has_one_row_per_trial_with_every_cv_score(iris):
    X, y = iris
    result = tune("iris", logreg({"C": [0.01, 10.0]}), {}, X, y, CV, "accuracy")
    table = trials_table(result.report())
    assert list(table.columns[:2]) == ["trial", "C"]
    assert {"accuracy_mean", "accuracy_std", "f1_macro_mean", "f1_macro_std"} <= set(table.columns)
    assert table["accuracy_mean"].tolist() == [t["cv"]["accuracy"]["mean"] for t in result.trials]


def test_a_cheaper_search_cross_validates_the_winner_again_with_the_candidates_seeds():
    frame = housing_frame(rows=240, seed=2, exact=True)
    X, y = frame[HOUSING.feature_names], frame[HOUSING.target.name].to_numpy()
    features = {"neighbor_counts": [3, 8], "neighbor_folds": 3}
    spec = {
        "estimator": "hist_gradient_boosting_regressor",
        "seeds": 2,
        "hyperparams": {"max_iter": 15, "max_features": 0.5, "early_stopping": False},
        "search": {"n_iter": 1, "seed": 0, "seeds": 1, "space": {"learning_rate": [0.3]}},
    }
    result = tune("housing", spec, features, X, pd.Series(y), CV, "rmse")

    assert result.search_seeds == 1 and len(result.trials) == 2
    rmse = [t["cv"]["rmse"]["mean"] for t in result.trials]
    assert result.best_trial == int(np.argmin(rmse))  # rmse: lower is better, the search minimises it
    two_seeds = build_pipeline("housing", {**spec, "hyperparams": result.best_hyperparams}, features, CV["seed"])
    assert cross_validation("housing", two_seeds, X, pd.Series(y), CV["folds"], CV["seed"]) == result.best_cv
    assert result.best_cv != result.trials[result.best_trial]["cv"]


def test_a_search_is_reproducible(iris):
    X, y = iris
    spec = logreg({"C": [0.03, 0.3, 3.0, 30.0]}, n_iter=2)
    first, second = (tune("iris", spec, {}, X, y, CV, "accuracy").report() for _ in range(2))
    assert first == second
