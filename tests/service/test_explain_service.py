"""POST /housing/explain and /iris/explain, live: the session's real models and background, real logs.

The explanations add up to the prediction predict answers, bad input gets predict's 4xx, every answer is
logged (table `explanations`, JSON lines of kind "explanation") and counted, and the routes are documented.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.service.test_service import HOUSING_ROW, IRIS_ROW, _metric, _rows
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer
from tests.support.tasks import HOUSING, IRIS


@pytest.fixture(scope="module")
def server(built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer("bento_service.service:PredictionService", tmp_path_factory.mktemp("explain") / "logs")
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def test_housing_contributions_add_up_to_the_prediction_predict_answers(server: LiveServer,
                                                                       built_repo: PipelineRepo) -> None:
    rows = _rows(built_repo, "housing", 6)
    rows.append({k: v for k, v in HOUSING_ROW.items() if k not in ("total_bedrooms", "ocean_proximity")})
    for row in rows:
        explained = httpx.post(f"{server.url}/housing/explain", json=row)
        assert explained.status_code == 200, explained.text
        body = explained.json()
        predicted = httpx.post(f"{server.url}/housing/predict", json=row).json()
        assert body["prediction"] == pytest.approx(predicted["prediction"], rel=1e-9)
        assert set(body["contributions"]) == set(HOUSING.feature_names)  # raw fields, not derived features
        total = sum(body["contributions"].values())
        assert total == pytest.approx(body["prediction"] - body["base_value"], rel=1e-6, abs=1e-6)
        assert body["model"] == predicted["model"] and body["request_id"]


def test_iris_contributions_add_up_per_class(server: LiveServer, built_repo: PipelineRepo) -> None:
    for row in [IRIS_ROW, *_rows(built_repo, "iris", 4)]:
        body = httpx.post(f"{server.url}/iris/explain", json=row).json()
        predicted = httpx.post(f"{server.url}/iris/predict", json=row).json()
        assert body["species"] == predicted["species"]
        assert set(body["contributions"]) == set(IRIS.classes)
        for species, probability in predicted["probabilities"].items():
            assert body["prediction"][species] == pytest.approx(probability, rel=1e-9, abs=1e-12)
            total = sum(body["contributions"][species].values())
            assert set(body["contributions"][species]) == set(IRIS.feature_names)
            assert total == pytest.approx(probability - body["base_value"][species], rel=1e-6, abs=1e-9)


BAD = [
    ("housing", {k: v for k, v in HOUSING_ROW.items() if k != "households"}),  # missing field
    ("housing", {**HOUSING_ROW, "median_income": 1000}),  # out of range
    ("housing", {**HOUSING_ROW, "latitude": "north"}),  # wrong type
    ("housing", {**HOUSING_ROW, "colour": "blue"}),  # unknown field
    ("housing", {**HOUSING_ROW, "total_bedrooms": 5000}),  # more bedrooms than rooms
    ("housing", {**HOUSING_ROW, "ocean_proximity": "MOON"}),
    ("iris", {**IRIS_ROW, "petal_width": -1}),
]


@pytest.mark.parametrize(("task", "body"), BAD)
def test_bad_input_gets_the_same_answer_as_predict(server: LiveServer, task: str, body: dict) -> None:
    explain = httpx.post(f"{server.url}/{task}/explain", json=body)
    predict = httpx.post(f"{server.url}/{task}/predict", json=body)
    assert 400 <= explain.status_code < 500 and explain.status_code == predict.status_code
    strip = lambda answer: {k: v for k, v in answer.json().items() if k != "request_id"}  # noqa: E731
    assert strip(explain) == strip(predict)


def test_wrong_content_type_is_415_as_for_predict(server: LiveServer) -> None:
    answer = httpx.post(f"{server.url}/housing/explain", content=json.dumps(HOUSING_ROW),
                        headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415


def test_explanations_are_logged_in_their_own_table_and_counted(server: LiveServer) -> None:
    before = httpx.get(f"{server.url}/metrics").text
    with sqlite3.connect(server.log_dir / "predictions.db") as db:
        predictions_before = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    answer = httpx.post(f"{server.url}/housing/explain", json=HOUSING_ROW, headers={"X-Request-ID": "explain-1"})
    httpx.post(f"{server.url}/housing/explain", json={**HOUSING_ROW, "households": 0})
    after = httpx.get(f"{server.url}/metrics").text

    with sqlite3.connect(server.log_dir / "predictions.db") as db:
        rows = db.execute("SELECT task, model, inputs, prediction FROM explanations WHERE request_id = ?",
                          ("explain-1",)).fetchall()
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == predictions_before
        assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] >= 4
    assert len(rows) == 1
    task, model, inputs, logged = rows[0]
    assert (task, model) == ("housing", answer.json()["model"])
    assert json.loads(inputs)["median_income"] == HOUSING_ROW["median_income"]
    assert json.loads(logged) == {k: answer.json()[k] for k in ("prediction", "base_value", "contributions")}
    lines = [json.loads(line) for line in (server.log_dir / "predictions.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines if line.get("request_id") == "explain-1"] == ["explanation"]

    assert _metric(after, "explanations_total", task="housing") - _metric(before, "explanations_total",
                                                                           task="housing") == 1
    assert _metric(after, "predictions_total", task="housing") == _metric(before, "predictions_total",
                                                                           task="housing")
    assert _metric(after, "validation_failures_total", task="housing", field="households") - \
        _metric(before, "validation_failures_total", task="housing", field="households") == 1
    assert _metric(after, "explanation_compute_seconds_count", task="housing") >= 1


def test_the_routes_are_in_the_openapi_document(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/docs.json").json()
    for route, answer in (("/housing/explain", "HousingExplanation"), ("/iris/explain", "IrisExplanation")):
        operation = document["paths"][route]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "Record")
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(answer)
        assert {"400", "415", "429", "503"} <= set(operation["responses"])
        assert answer in document["components"]["schemas"]
