"""Exact Shapley values over the raw fields (domain/explain.py): what the service answers on /<task>/explain.

Real models trained here (scikit-learn, the project's feature transformer), real rows where HOUSING_CSV is
set; the comparison with shap itself is in tests/pipeline/test_explain_stage.py (shap compiles with numba
for tens of seconds, too slow for this tier).
"""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from bento_service.explainer import ExplainerBusy, ServedExplainer
from bento_service.predictors import Predictor
from domain.estimators import ClippedRegressor
from domain.explain import MISSING_CODE, ExactShapley, decode, encode, frame_model, shapley_matrix
from domain.features import HousingFeatures
from tests.support.data_factory import housing_frame
from tests.support.tasks import HOUSING, IRIS

FIELDS = HOUSING.feature_names


def _housing_model(frame: pd.DataFrame):
    """The champion's shape, small: the project's features, then clipped gradient boosting."""
    X, y = frame[FIELDS], frame["median_house_value"]
    model = make_pipeline(HousingFeatures(neighbor_counts=(5, 20)),
                          ClippedRegressor(HistGradientBoostingRegressor(max_iter=60, random_state=0)))
    return model.fit(X, y)


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, object]:
    frame = housing_frame(rows=600, seed=3)
    return frame, _housing_model(frame)


@pytest.fixture(scope="module")
def real(real_housing_csv: Path) -> tuple[pd.DataFrame, object]:
    frame = pd.read_csv(real_housing_csv).sample(3000, random_state=0)
    return frame, _housing_model(frame)


def _explainer(frame: pd.DataFrame, rows: int = 4) -> ExactShapley:
    return ExactShapley(HOUSING, encode(HOUSING, frame[FIELDS].sample(rows, random_state=1).to_dict("records")))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in frame[FIELDS].to_dict("records")]


def test_contributions_add_up_on_real_rows_and_prediction_is_predicts(real) -> None:
    frame, model = real
    explainer = _explainer(frame)
    f = frame_model(HOUSING, model.predict)
    rows = frame[frame["total_bedrooms"].isna()].head(3)  # missing values, treated as predict treats them
    rows = pd.concat([rows, frame.head(9)])
    for record in _records(rows):
        e = explainer.explain(encode(HOUSING, [record])[0], f)
        assert e.prediction == pytest.approx(model.predict(pd.DataFrame([record], columns=FIELDS))[0], rel=1e-12)
        assert e.contributions.sum() == pytest.approx(e.prediction - e.base_value, rel=1e-6, abs=1e-6)
        assert e.base_value == pytest.approx(f(explainer.background).mean(), rel=1e-12)


def test_raising_median_income_raises_its_contribution_on_average(real) -> None:
    frame, model = real
    explainer = _explainer(frame)
    f = frame_model(HOUSING, model.predict)
    income = FIELDS.index("median_income")
    rows = encode(HOUSING, _records(frame.head(16)))
    before = np.array([explainer.explain(x, f).contributions[income] for x in rows])
    richer = rows.copy()
    richer[:, income] += 2.0
    after = np.array([explainer.explain(x, f).contributions[income] for x in richer])
    assert (after - before).mean() > 5_000  # dollars: income is the strongest single raw field


def test_a_field_the_model_ignores_gets_no_contribution(synthetic) -> None:
    frame, _ = synthetic
    ignored = FIELDS.index("housing_median_age")
    used = [j for j in range(len(FIELDS)) if j != ignored]
    matrix = encode(HOUSING, _records(frame))
    trees = HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(matrix[:, used], frame["median_house_value"])
    explainer = _explainer(frame)
    for x in matrix[:20]:
        e = explainer.explain(x, lambda m: trees.predict(m[:, used]))
        assert abs(e.contributions[ignored]) < 1e-9 * abs(e.prediction)
        assert np.abs(e.contributions).max() > 100  # the others do move it
        assert e.contributions.sum() == pytest.approx(e.prediction - e.base_value, rel=1e-6)


def test_a_linear_model_gets_its_textbook_shapley_values(synthetic) -> None:
    """For f linear, phi_i = w_i (x_i - mean background x_i): the weights W are right, not just additive."""
    frame, _ = synthetic
    numeric = [j for j, name in enumerate(FIELDS) if name != "ocean_proximity"]
    matrix = np.nan_to_num(encode(HOUSING, _records(frame)))
    linear = LinearRegression().fit(matrix[:, numeric], frame["median_house_value"])
    background = matrix[:10]
    explainer = ExactShapley(HOUSING, background)
    x = matrix[50]
    e = explainer.explain(x, lambda m: linear.predict(m[:, numeric]))
    expected = np.zeros(len(FIELDS))
    expected[numeric] = linear.coef_ * (x[numeric] - background[:, numeric].mean(axis=0))
    np.testing.assert_allclose(e.contributions, expected, rtol=1e-9, atol=1e-6)


def test_shapley_weights_sum_to_the_grand_coalition() -> None:
    W = shapley_matrix(4)
    # summed over fields, the weights give v(full) - v(empty): +1 on the last coalition, -1 on the first
    np.testing.assert_allclose(W.sum(axis=0), [-1, *([0] * 14), 1], atol=1e-12)


def test_encoding_keeps_missing_values_missing() -> None:
    record = {"longitude": -122.2, "latitude": 37.9, "housing_median_age": 41, "total_rooms": 880,
              "population": 322, "households": 126, "median_income": 8.3}
    matrix = encode(HOUSING, [record, {**record, "ocean_proximity": "ISLAND", "total_bedrooms": 129}])
    assert math.isnan(matrix[0, FIELDS.index("total_bedrooms")])
    assert matrix[0, FIELDS.index("ocean_proximity")] == MISSING_CODE
    columns = decode(HOUSING, matrix)
    assert columns["ocean_proximity"] == [None, "ISLAND"] and columns["total_bedrooms"] == [None, 129.0]


def test_explanations_beyond_the_slots_and_queue_get_busy_at_once() -> None:
    """One slot, no queue: while an explanation computes, the next is refused (429) without waiting."""
    release = threading.Event()

    def slow(matrix: np.ndarray) -> np.ndarray:
        release.wait(10)
        return np.tile([0.2, 0.3, 0.5], (len(matrix), 1))

    predictor = Predictor("scikit-learn", "test", fallback=lambda records: np.zeros(len(records)),
                          fields_fallback=slow)
    background = [{name: 1.0 for name in IRIS.feature_names}]
    explainer = ServedExplainer("iris", background, predictor, list(IRIS.classes), concurrency=1, queue=0)

    async def scenario() -> dict:
        first = asyncio.ensure_future(explainer.explain(background[0]))
        await asyncio.sleep(0.05)
        with pytest.raises(ExplainerBusy):
            await explainer.explain(background[0])
        release.set()
        return explainer.answer(await first)

    try:
        answer = asyncio.run(scenario())
    finally:
        explainer.close()
    assert set(answer["contributions"]) == set(IRIS.classes)
    assert answer["prediction"] == {"setosa": 0.2, "versicolor": 0.3, "virginica": 0.5}
    assert explainer.in_flight == 0
