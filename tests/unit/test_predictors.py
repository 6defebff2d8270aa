"""The service's choice of predictor: the compiled model only when it loads and agrees, never a wrong answer.

Real parts: small HistGradientBoosting champions trained here on generated rows, their real ONNX graphs
(stages/compile.py) run by ONNX Runtime, and graphs broken the ways a shipped artifact can break.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from bento_service.predictors import Predictor, load_predictor, sklearn_predict
from domain.compiled import FORMAT, CompiledModel
from stages.candidates import build_pipeline
from stages.compile import build_graph, compile_model, ensemble_of
from tests.support.data_factory import housing_frame
from tests.support.tasks import HOUSING

INCOME = list(HOUSING.feature_names).index("median_income")  # the features step passes raw numbers through in order
SPEC = {"estimator": "hist_gradient_boosting_regressor", "seeds": 2,
        "hyperparams": {"max_iter": 20, "max_leaf_nodes": 15, "early_stopping": False}}


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """As in the train stage and the service: OpenMP's thread pool thrashes on shared cores."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@functools.cache
def champion(neighbor_counts=(3, 8), seed: int = 0):
    frame = housing_frame(rows=400, seed=seed)
    model = build_pipeline("housing", SPEC, {"neighbor_counts": list(neighbor_counts), "neighbor_folds": 3}, seed)
    return model.fit(frame[HOUSING.feature_names], frame[HOUSING.target.name])


@functools.cache
def graph_of(neighbor_counts=(3, 8), seed: int = 0) -> bytes:
    return build_graph(champion(neighbor_counts, seed))


@pytest.fixture(scope="module")
def model():
    return champion()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    rows = housing_frame(rows=40, seed=9)[HOUSING.feature_names].to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()} for row in rows]


def metadata(records: list[dict], **compiled) -> dict:
    return {"input_example": records[:3], "compiled": {"compiled": True, "format": FORMAT, "trees": 40, **compiled}}


def test_a_sound_graph_is_served_and_answers_as_scikit_learn(model, records) -> None:
    predictor = load_predictor("housing", model, {"compiled": graph_of()}, metadata(records))
    assert predictor.kind == "compiled" and "ONNX Runtime" in predictor.detail
    np.testing.assert_allclose(predictor.predict(records), sklearn_predict("housing", model)(records), rtol=1e-12)


@pytest.mark.parametrize(("case", "reason"), [
    ("corrupt bytes", "does not load"),
    ("truncated graph", "does not load"),
    ("another model's graph", "disagrees with scikit-learn"),
    ("graph of other features", "does not load"),
    ("unknown format", "is not"),
    ("no compiled form", "carries no compiled form"),
])
def test_a_broken_compiled_form_falls_back_to_scikit_learn_and_says_why(model, records, case, reason) -> None:
    graph, meta = graph_of(), metadata(records)
    if case == "corrupt bytes":
        graph = b"not an onnx graph" * 100
    elif case == "truncated graph":
        graph = graph[: len(graph) // 2]
    elif case == "another model's graph":
        graph = graph_of(seed=1)
    elif case == "graph of other features":
        graph = graph_of(neighbor_counts=(3,))  # one column fewer than this model's features
    elif case == "unknown format":
        meta["compiled"]["format"] = "onnx-tree-ensemble/0"
    else:
        graph, meta = None, {"input_example": records[:3]}
    predictor = load_predictor("housing", model, {"compiled": graph}, meta)
    assert predictor.kind == "scikit-learn" and reason in predictor.detail, predictor.detail
    expected = model.predict(pd.DataFrame.from_records(records, columns=HOUSING.feature_names))
    np.testing.assert_array_equal(predictor.predict(records), expected)


def test_a_model_that_does_not_compile_says_so_as_designed(records) -> None:
    frame = housing_frame(rows=200, seed=2)
    linear = build_pipeline("housing", {"estimator": "linear_regression", "scale": True, "hyperparams": {}},
                            {"neighbor_counts": [3]}, 0).fit(frame[HOUSING.feature_names], frame[HOUSING.target.name])
    graph, record = compile_model(linear, frame[HOUSING.feature_names])
    assert graph is None and not record["compiled"] and "pipeline" in record["reason"]
    predictor = load_predictor("housing", linear, {"compiled": None},
                               {"input_example": records[:3], "compiled": record})
    assert predictor.kind == "scikit-learn" and predictor.detail.startswith("not compiled:")


def test_a_compiled_call_that_fails_is_answered_by_scikit_learn(model, records) -> None:
    """A graph that loads but fails at run time (it expects one feature fewer): the batch is still answered,
    with scikit-learn's predictions, and the failure is counted for GET /model."""
    broken = CompiledModel(model.steps[0][1], graph_of(neighbor_counts=(3,)))
    predictor = Predictor("compiled", "test", sklearn_predict("housing", model), broken)
    np.testing.assert_array_equal(predictor.predict(records), sklearn_predict("housing", model)(records))
    assert predictor.describe()["compiled_failures"] == 1


@pytest.mark.parametrize("spec", [
    {"estimator": "random_forest_regressor", "hyperparams": {"n_estimators": 12, "min_samples_leaf": 3}},
    {"estimator": "decision_tree_regressor", "hyperparams": {"max_depth": 6}},
], ids=lambda spec: spec["estimator"])
def test_forests_and_single_trees_compile_and_take_scikit_learns_float32_branches(spec) -> None:
    """scikit-learn's trees round the features to float32 before comparing: so must the graph. Rows whose
    features sit exactly on the float64 thresholds would fall the other way without that rounding."""
    frame = housing_frame(rows=400, seed=4)
    model = build_pipeline("housing", spec, {"neighbor_counts": [3, 8], "neighbor_folds": 3}, 0)
    model.fit(frame[HOUSING.feature_names], frame[HOUSING.target.name])
    graph, record = compile_model(model, frame[HOUSING.feature_names])
    assert graph is not None and record["compiled"], record
    # median_income reaches the trees unchanged: put it exactly on every threshold the trees test it against
    thresholds = np.unique(np.concatenate([tree.threshold[(tree.left >= 0) & (tree.feature == INCOME)]
                                           for _, tree in ensemble_of(model).trees]))
    rounds_up = thresholds[thresholds.astype(np.float32).astype(np.float64) > thresholds]
    assert len(rounds_up), "no threshold where float32 rounding changes the branch: the test would prove nothing"
    on_thresholds = housing_frame(rows=len(thresholds), seed=11)[HOUSING.feature_names]
    on_thresholds["median_income"] = thresholds
    compiled = CompiledModel(model.steps[0][1], graph)
    np.testing.assert_allclose(compiled.predict(on_thresholds), model.predict(on_thresholds), rtol=0, atol=1e-6)


def test_a_trained_forest_predicts_with_one_job_and_the_same_bits_every_time() -> None:
    """Train's single_threaded must reach the fitted forest inside ClippedRegressor (`regressor_`), not only its
    template: a forest predicting with every core adds its trees in whatever order threads finish, so the
    challenger's reference profile (stage `profile`) changed in the last bits from run to run."""
    from stages.scoring import single_threaded

    frame = housing_frame(rows=400, seed=5)
    spec = {"estimator": "random_forest_regressor", "hyperparams": {"n_estimators": 40, "n_jobs": -1}}
    model = build_pipeline("housing", spec, {"neighbor_counts": [3], "neighbor_folds": 3}, 0)
    model = single_threaded(model.fit(frame[HOUSING.feature_names], frame[HOUSING.target.name]))
    assert model.steps[-1][1].regressor_.n_jobs == 1
    rows = housing_frame(rows=3000, seed=6)[HOUSING.feature_names]
    first = model.predict(rows)
    assert all(np.array_equal(first, model.predict(rows)) for _ in range(5))
