"""The prediction service, live: `bentoml serve` on a free loopback port, real models trained on
small data by the real pipeline (the session's DVC repo), real SQLite and JSON-lines logs."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from tests.support.clients import concurrent_clients
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer
from tests.support.tasks import served_set

HOUSING_ROW = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
               "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252,
               "ocean_proximity": "NEAR BAY"}
IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def server(built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The development server (`bentoml serve` from the project root) on the session's models."""
    live = LiveServer("bento_service.service:PredictionService", tmp_path_factory.mktemp("serve") / "logs")
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def _rows(repo: PipelineRepo, task: str, n: int) -> list[dict]:
    frame = pd.read_csv(repo.path / f"data/prepared/{task}/test.csv")
    target = "median_house_value" if task == "housing" else "species"
    frame = frame.drop(columns=target).dropna().head(n)
    return [{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
            for row in frame.to_dict(orient="records")]


def _db_rows(log_dir: Path, table: str = "predictions") -> list[sqlite3.Row]:
    with sqlite3.connect(log_dir / "predictions.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _jsonl(log_dir: Path) -> list[dict]:
    path = log_dir / "predictions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- 1. predictions equal the champion file's ------------------------------------------------

def test_single_and_batch_predictions_match_the_champion_file(server: LiveServer, built_repo: PipelineRepo) -> None:
    rows = _rows(built_repo, "housing", 25)
    champion = joblib.load(built_repo.path / "models/housing/champion.joblib")
    expected = champion.predict(pd.DataFrame(rows))

    single = [httpx.post(f"{server.url}/housing/predict", json=row).json() for row in rows[:5]]
    batch = httpx.post(f"{server.url}/housing/predict_batch", json={"records": rows}).json()

    assert [s["prediction"] for s in single] == pytest.approx(list(expected[:5]), rel=1e-9)
    assert batch["predictions"] == pytest.approx(list(expected), rel=1e-9)
    tag = json.loads((built_repo.path / "models/housing/bento_tags.json").read_text())["champion"]
    assert batch["model"] == tag and all(s["model"] == tag for s in single)
    assert len({s["request_id"] for s in single}) == 5


def test_iris_prediction_matches_the_champion_file(server: LiveServer, built_repo: PipelineRepo) -> None:
    rows = _rows(built_repo, "iris", 10)
    champion = joblib.load(built_repo.path / "models/iris/champion.joblib")
    expected = champion.predict(pd.DataFrame(rows))
    answers = [httpx.post(f"{server.url}/iris/predict", json=row).json() for row in rows]
    assert [a["species"] for a in answers] == list(expected)
    for answer in answers:
        assert set(answer["probabilities"]) == {"setosa", "versicolor", "virginica"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
        assert answer["species"] == max(answer["probabilities"], key=answer["probabilities"].get)


def test_ocean_proximity_is_optional(server: LiveServer) -> None:
    row = {k: v for k, v in HOUSING_ROW.items() if k != "ocean_proximity"}
    response = httpx.post(f"{server.url}/housing/predict", json=row)
    assert response.status_code == 200
    assert response.json()["prediction"] > 0


def test_model_endpoint_reports_the_served_tags_and_their_registry_versions(server: LiveServer,
                                                                            built_repo: PipelineRepo) -> None:
    """GET /model: exactly the tags of the served set, each with the registry version `make release` gave it."""
    from mlflow.tracking import MlflowClient

    info = httpx.get(f"{server.url}/model").json()
    served = served_set(built_repo.path)
    client = MlflowClient(tracking_uri=f"sqlite:///{built_repo.path / 'mlflow.db'}")
    for task, registered in (("housing", "housing-regressor"), ("iris", "iris-classifier")):
        assert (info[task]["tag"], info[task]["challenger"]["tag"]) == (served[task]["champion"],
                                                                         served[task]["challenger"])
        for entry, alias in ((info[task], "champion"), (info[task]["challenger"], "challenger")):
            version = client.get_model_version_by_alias(registered, alias)
            assert (entry["mlflow_model_version"], entry["mlflow_run_id"]) == (str(version.version), version.run_id)
        champion = json.loads((built_repo.path / f"models/{task}/champion.json").read_text())
        assert info[task]["raw_data_md5"] == built_repo.declaration(task)["source"]["md5"]
        assert info[task]["test"] == champion["test"]
        assert len(info[task]["git_commit"]) == 40


# -- 2. bad input: a 4xx naming the problem, never a 5xx, never a traceback ----------------------

def _without(field: str) -> dict:
    return {k: v for k, v in HOUSING_ROW.items() if k != field}


BAD_REQUESTS = [
    ("missing field", "/housing/predict", {"json": _without("households")}, 400, "households"),
    ("wrong type", "/housing/predict", {"json": {**HOUSING_ROW, "median_income": "high"}}, 400, "median_income"),
    ("NaN", "/housing/predict", {"content": json.dumps({**HOUSING_ROW, "population": float("nan")}),
                                 "headers": {"content-type": "application/json"}}, 400, "population"),
    ("infinity", "/housing/predict", {"content": json.dumps({**HOUSING_ROW, "total_rooms": float("inf")}),
                                      "headers": {"content-type": "application/json"}}, 400, "total_rooms"),
    ("negative", "/housing/predict", {"json": {**HOUSING_ROW, "population": -5}}, 400, "population"),
    ("households 0", "/housing/predict", {"json": {**HOUSING_ROW, "households": 0}}, 400, "households"),
    ("bedrooms > rooms", "/housing/predict", {"json": {**HOUSING_ROW, "total_bedrooms": 9000.0}}, 400,
     "total_bedrooms"),
    ("outside California", "/housing/predict", {"json": {**HOUSING_ROW, "latitude": 48.8}}, 400, "latitude"),
    ("unknown category", "/housing/predict", {"json": {**HOUSING_ROW, "ocean_proximity": "LAKE"}}, 400,
     "ocean_proximity"),
    ("unknown field", "/housing/predict", {"json": {**HOUSING_ROW, "pool": True}}, 400, "pool"),
    ("boolean as number", "/iris/predict", {"json": {**IRIS_ROW, "petal_width": True}}, 400, "petal_width"),
    ("empty list", "/housing/predict_batch", {"json": {"records": []}}, 400, "records"),
    ("over-limit list", "/housing/predict_batch", {"json": {"records": [HOUSING_ROW] * 1001}}, 400, "records"),
    ("bad record in batch", "/housing/predict_batch", {"json": {"records": [HOUSING_ROW, _without("latitude")]}},
     400, "records.1.latitude"),
    ("non-JSON", "/iris/predict", {"content": b"sepal_length=5", "headers": {"content-type": "application/json"}},
     400, "body"),
    ("wrong content type", "/iris/predict", {"content": json.dumps(IRIS_ROW), "headers": {"content-type": "text/csv"}},
     415, "Content-Type"),
    ("oversized body", "/housing/predict_batch", {"content": b"{" + b" " * (2 << 20) + b"}",
                                                  "headers": {"content-type": "application/json"}}, 413, "exceeds"),
]


@pytest.mark.parametrize(("case", "route", "request_kwargs", "status", "names"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_gets_a_4xx_naming_the_problem(server: LiveServer, case: str, route: str, request_kwargs: dict,
                                                  status: int, names: str) -> None:
    response = httpx.post(f"{server.url}{route}", timeout=30, **request_kwargs)
    assert response.status_code == status, response.text
    assert names in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_bad_input_leaves_no_traceback_in_the_server_log(server: LiveServer) -> None:
    # (their statuses: test_bad_input_gets_a_4xx_naming_the_problem; prediction routes are not in the access log)
    for case in BAD_REQUESTS:
        httpx.post(f"{server.url}{case[1]}", timeout=30, **case[2])
    assert "Traceback" not in server.log_text()


def test_prediction_routes_stay_out_of_the_access_log_and_in_the_request_metrics(server: LiveServer) -> None:
    """They are in the prediction log (ACCESS_LOG_PREDICTIONS=1 puts them back); other routes stay in it."""
    def predict_count() -> float:
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("bentoml_service_request_total{") and 'endpoint="/housing/predict"' in line
                   and 'http_response_code="200"' in line)

    before = predict_count()
    assert httpx.post(f"{server.url}/housing/predict", json=HOUSING_ROW, timeout=30).status_code == 200
    assert httpx.get(f"{server.url}/model", timeout=30).status_code == 200
    assert predict_count() == before + 1
    access_lines = [line for line in server.log_text().splitlines() if "(scheme=http," in line]
    assert [line for line in access_lines if "path=/model," in line], "GET /model is not in the access log"
    assert not [line for line in access_lines if "path=/housing/predict" in line or "path=/iris/" in line]


def test_rejected_requests_are_logged_as_errors(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/housing/predict", json=_without("median_income"))
    rows = [r for r in _db_rows(server.log_dir, "request_errors") if r["request_id"] == response.json()["request_id"]]
    assert len(rows) == 1 and rows[0]["status"] == 400 and rows[0]["task"] == "housing"
    assert "median_income" in rows[0]["error"]


# -- 3. every prediction is logged, in SQLite and in the file ----------------------------------

def test_concurrent_requests_are_each_logged_once(server: LiveServer) -> None:
    before = {r["request_id"] for r in _db_rows(server.log_dir)}
    n = 60

    def call(i: int) -> str:
        row = {**HOUSING_ROW, "median_income": 1.0 + i / 10}
        response = httpx.post(f"{server.url}/housing/predict", json=row, timeout=60)
        assert response.status_code == 200
        return response.json()["request_id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = set(pool.map(call, range(n)))
    batch = httpx.post(f"{server.url}/housing/predict_batch", json={"records": [HOUSING_ROW] * 100}).json()

    rows = [r for r in _db_rows(server.log_dir) if r["request_id"] not in before]
    assert len(ids) == n
    assert sorted(r["request_id"] for r in rows if r["request_id"] in ids) == sorted(ids)
    assert sum(r["request_id"] == batch["request_id"] for r in rows) == 100
    lines = [line for line in _jsonl(server.log_dir) if line["request_id"] in ids | {batch["request_id"]}]
    assert len(lines) == n + 100
    row = next(r for r in rows if r["request_id"] in ids)
    assert row["task"] == "housing" and row["model"].startswith("housing-regressor:")
    assert json.loads(row["inputs"])["households"] == HOUSING_ROW["households"]
    assert isinstance(json.loads(row["prediction"]), float) and row["latency_ms"] > 0
    assert row["ts"].endswith("+00:00")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_answered_request_survives_kill_9(tmp_path: Path, built_repo: PipelineRepo, workers: str) -> None:
    """Under load, SIGKILL the server: every 200 has its row. Two workers share the same log files."""
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs", env={"WORKERS": workers})
    answered: list[str] = []

    def load(stop: threading.Event) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(f"{live.url}/housing/predict", json=HOUSING_ROW)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    answered.append(response.json()["request_id"])
    try:
        live.wait_ready()
        with concurrent_clients(load, 8):
            time.sleep(3)
            live.kill()
    finally:
        live.stop()
    with pytest.raises(httpx.ConnectError):  # no worker survived to keep answering
        httpx.get(f"{live.url}/livez", timeout=2)
    logged = {r["request_id"] for r in _db_rows(tmp_path / "logs")}
    lines = {line["request_id"] for line in _jsonl(tmp_path / "logs")}
    assert len(answered) > 20
    assert set(answered) <= lines
    assert set(answered) <= logged, f"{len(set(answered) - logged)} answered predictions missing from SQLite"


def test_unwritable_log_answers_503_not_an_unlogged_prediction(tmp_path: Path, built_repo: PipelineRepo) -> None:
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs")
    try:
        live.wait_ready()
        assert httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW).status_code == 200
        with sqlite3.connect(tmp_path / "logs" / "predictions.db") as db:
            db.execute("DROP TABLE predictions")
        response = httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW)
        assert response.status_code == 503
        assert "prediction log unavailable" in response.json()["error"]
        metrics = httpx.get(f"{live.url}/metrics").text
        assert _metric(metrics, "prediction_log_write_failures_total") >= 1
    finally:
        live.stop()


# -- 4. metrics and readiness ----------------------------------------------------------------

def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            head, value = line.rsplit(" ", 1)
            if head.split("{")[0] == name:
                total += float(value)
    return total


def test_custom_metrics_move(server: LiveServer) -> None:
    before = httpx.get(f"{server.url}/metrics").text
    httpx.post(f"{server.url}/housing/predict_batch", json={"records": [HOUSING_ROW] * 7})
    httpx.post(f"{server.url}/iris/predict", json=IRIS_ROW)
    httpx.post(f"{server.url}/housing/predict", json=_without("households"))
    after = httpx.get(f"{server.url}/metrics").text

    for name, labels, delta in [
        ("predictions_total", {"task": "housing"}, 7),
        ("predictions_total", {"task": "iris"}, 1),
        ("housing_prediction_value_usd_count", {}, 7),
        ("iris_predicted_species_total", {}, 1),
        ("validation_failures_total", {"task": "housing", "field": "households"}, 1),
    ]:
        assert _metric(after, name, **labels) - _metric(before, name, **labels) == delta, name
    assert "prediction_log_write_failures_total" in after


def test_readyz_is_503_until_the_log_can_be_opened(tmp_path: Path, built_repo: PipelineRepo) -> None:
    blocker = tmp_path / "volume"
    blocker.write_text("a file where the log directory should be: the volume is not mounted yet")
    live = LiveServer("bento_service.service:PredictionService", blocker / "logs", work_dir=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{live.url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(3)
        assert httpx.get(f"{live.url}/readyz").status_code == 503
        assert httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW).status_code == 503
        blocker.unlink()
        live.wait_ready(timeout=30)
        assert httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW).status_code == 200
    finally:
        live.stop()


# -- 5. API key ----------------------------------------------------------------------------------

def test_api_key_protects_prediction_routes_only(tmp_path: Path, built_repo: PipelineRepo) -> None:
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs", env={"API_KEY": "s3cret"})
    try:
        live.wait_ready()
        assert httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW).status_code == 401
        wrong = httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["error"]
        ok = httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert httpx.get(f"{live.url}/livez").status_code == 200
        assert httpx.get(f"{live.url}/readyz").status_code == 200
        assert httpx.get(f"{live.url}/metrics").status_code == 200
    finally:
        live.stop()


# -- 6. the built Bento serves what the development server serves --------------------------------

def test_built_bento_answers_like_the_development_server(server: LiveServer, bento_tag: str, tmp_path: Path) -> None:
    assert bento_tag.startswith("prediction_service:")
    bento = LiveServer(bento_tag, tmp_path / "logs", cwd=tmp_path)
    try:
        bento.wait_ready()
        requests = [("/housing/predict", HOUSING_ROW), ("/housing/predict_batch", {"records": [HOUSING_ROW] * 3}),
                    ("/iris/predict", IRIS_ROW), ("/housing/predict", _without("households")),
                    ("/iris/predict", {**IRIS_ROW, "petal_width": -1})]
        for route, body in requests:
            dev, built = (httpx.post(f"{s.url}{route}", json=body) for s in (server, bento))
            assert built.status_code == dev.status_code, route
            strip = ("request_id",)
            assert {k: v for k, v in built.json().items() if k not in strip} == \
                   {k: v for k, v in dev.json().items() if k not in strip}, route
        assert httpx.get(f"{bento.url}/model").json() == httpx.get(f"{server.url}/model").json()
        assert len(_db_rows(tmp_path / "logs")) == 1 + 3 + 1
    finally:
        bento.stop()
