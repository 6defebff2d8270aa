"""Champion and challenger on a live `bentoml serve`, in each mode (off, shadow, A/B), with ground-truth feedback.

The challengers are two of the session pipeline's candidates (housing `forest`, iris `lda`), saved by a
subprocess into a private BENTOML_HOME beside the session's champions, and a served set naming them (SERVED_MODELS),
so the other service tests' store stays as it is. One server per mode, stopped before the next starts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer
from tests.support.tasks import served_set

CHALLENGERS = {"housing": "housing-forest", "iris": "iris-lda"}
SAVE_CHALLENGERS = """
import json, sys
import bentoml, joblib, numpy as np, pandas as pd
from tests.support.tasks import SCHEMAS
repo = sys.argv[1]
for task, candidate in json.loads(sys.argv[2]).items():
    schema = SCHEMAS[task]
    model = joblib.load(f"{repo}/models/{task}/candidates/{candidate}/model.joblib")
    test = pd.read_csv(f"{repo}/data/prepared/{task}/test.csv")
    X, y = test[schema.feature_names], test[schema.target.name]
    if task == "housing":
        scores = {"rmse": float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))}
    else:
        scores = {"accuracy": float(np.mean(model.predict(X) == y))}
    example = pd.read_csv(f"{repo}/data/prepared/{task}/train.csv")[schema.feature_names].dropna().head(3)
    bentoml.sklearn.save_model(f"{schema.challenger_name}:test", model,
                               signatures={"predict": {"batchable": False}},
                               metadata={"role": "challenger", "candidate": candidate, "test": scores,
                                         "input_example": example.to_dict(orient="records")})
"""


@pytest.fixture(scope="module")
def challenger_home(built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BENTOML_HOME holding the session's champions (links) and the two challengers."""
    home = tmp_path_factory.mktemp("challenger-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", SAVE_CHALLENGERS, str(built_repo.path), json.dumps(CHALLENGERS)],
                   cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=300)
    shared = Path(os.environ["BENTOML_HOME"]) / "models"
    for name in ("housing-regressor", "iris-classifier"):
        (home / "models" / name).symlink_to(shared / name)
    served = served_set(built_repo.path)
    (home / "bento_models.json").write_text(json.dumps(  # the served set: the session's champions, these challengers
        {task: {"champion": roles["champion"], "challenger": f"{roles['challenger'].split(':')[0]}:test"}
         for task, roles in served.items()}))
    return home


FEEDBACK_QUEUE = 5  # the A/B server's bound on waiting feedback items


def serve(home: Path, root: Path, extra_env: dict[str, str] | None = None, **modes: str) -> LiveServer:
    env = {"BENTOML_HOME": str(home), "SERVED_MODELS": str(home / "bento_models.json"),
           **{f"{task.upper()}_CHALLENGER": mode for task, mode in modes.items()},
           **(extra_env or {})}
    live = LiveServer("bento_service.service:PredictionService", root / "logs", env=env, work_dir=root)
    live.wait_ready()
    return live


@pytest.fixture(scope="module")
def records(built_repo: PipelineRepo) -> dict[str, list[dict[str, Any]]]:
    """Test-split records of each task as a client sends them (no NaN), with their true values."""
    out = {}
    for task in ("housing", "iris"):
        frame = pd.read_csv(built_repo.path / f"data/prepared/{task}/test.csv")
        out[task] = [{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
                     for row in frame.to_dict(orient="records")]
    return out


def features(record: dict[str, Any], task: str) -> dict[str, Any]:
    target = "median_house_value" if task == "housing" else "species"
    return {k: v for k, v in record.items() if k != target}


def log_rows(live: LiveServer, query: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(live.log_dir / "predictions.db") as connection:
        return connection.execute(query, args).fetchall()


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def ab_server(challenger_home: Path, tmp_path_factory: pytest.TempPathFactory):
    live = serve(challenger_home, tmp_path_factory.mktemp("ab"), {"FEEDBACK_QUEUE": str(FEEDBACK_QUEUE)},
                 housing="ab:0.2")
    try:
        yield live
    finally:
        live.stop()


def test_model_lists_champion_challenger_and_routing(ab_server: LiveServer) -> None:
    info = httpx.get(f"{ab_server.url}/model", timeout=10).json()
    assert info["housing"]["routing"] == {"mode": "ab", "challenger_share": 0.2}
    assert info["iris"]["routing"] == {"mode": "off"}
    for task, candidate in CHALLENGERS.items():
        assert info[task]["tag"].startswith(("housing-regressor:", "iris-classifier:"))
        assert info[task]["challenger"]["tag"].endswith("-challenger:test")
        assert info[task]["challenger"]["candidate"] == candidate


def test_ab_sends_the_share_to_the_challenger_and_a_client_key_sticks(ab_server: LiveServer, records) -> None:
    info = httpx.get(f"{ab_server.url}/model", timeout=10).json()["housing"]
    champion, challenger = info["tag"], info["challenger"]["tag"]
    rows = [features(r, "housing") for r in records["housing"]]
    arms = []
    with httpx.Client(base_url=ab_server.url, timeout=30) as client:
        for i in range(2000):
            answer = client.post("/housing/predict", json=rows[i % len(rows)]).json()
            assert answer["model"] == (challenger if answer["arm"] == "challenger" else champion)
            arms.append(answer["arm"])
        share = arms.count("challenger") / len(arms)
        assert 0.17 <= share <= 0.23, share
        sticky = {}
        for key in (f"client-{n}" for n in range(40)):
            seen = {client.post("/housing/predict", json=rows[0], headers={"X-Client-Key": key}).json()["arm"]
                    for _ in range(4)}
            assert len(seen) == 1, (key, seen)
            sticky[key] = seen.pop()
        assert set(sticky.values()) == {"champion", "challenger"}  # 40 keys: both arms (p of one arm < 1e-3)
    logged = dict(log_rows(ab_server, "SELECT arm, COUNT(*) FROM predictions WHERE task = 'housing' GROUP BY arm"))
    assert logged["challenger"] == arms.count("challenger") + 4 * list(sticky.values()).count("challenger")
    assert "shadow" not in logged


def test_feedback_stores_once_and_rejects_unknown_and_bad_values(ab_server: LiveServer, records) -> None:
    record = records["housing"][0]
    with httpx.Client(base_url=ab_server.url, timeout=30) as client:
        answer = client.post("/housing/predict", json=features(record, "housing"), headers={"X-Request-ID": "fb-1"})
        assert answer.status_code == 200
        actual = record["median_house_value"]
        first = client.post("/housing/feedback", json={"request_id": "fb-1", "actual": actual})
        assert first.status_code == 200 and first.json()["status"] == "stored", first.text
        again = client.post("/housing/feedback", json={"request_id": "fb-1", "actual": actual + 1})
        assert again.status_code == 409 and again.json()["status"] == "duplicate"
        unknown = client.post("/housing/feedback", json={"request_id": "never-sent", "actual": actual})
        assert unknown.status_code == 404 and "never-sent" in unknown.json()["error"]
        wrong_task = client.post("/iris/feedback", json={"request_id": "fb-1", "actual": "setosa"})
        assert wrong_task.status_code == 404
        bad = client.post("/housing/feedback", json={"request_id": "fb-1", "actual": -5})
        assert bad.status_code == 400 and "actual" in bad.json()["error"]
        bad_species = client.post("/iris/feedback", json={"request_id": "fb-1", "actual": "rose"})
        assert bad_species.status_code == 400 and "actual" in bad_species.json()["error"]
        batch = client.post("/housing/predict_batch", headers={"X-Request-ID": "fb-batch"},
                            json={"records": [features(r, "housing") for r in records["housing"][1:4]]})
        assert batch.status_code == 200
        answered = client.post("/housing/feedback_batch", json={"items": [
            {"request_id": "fb-batch", "position": 2, "actual": 100000.0},
            {"request_id": "fb-batch", "position": 2, "actual": 100000.0},
            {"request_id": "fb-batch", "position": 3, "actual": 100000.0}]})
        assert answered.status_code == 200, answered.text
        many = answered.json()
        assert [r["status"] for r in many["results"]] == ["stored", "duplicate", "unknown"]
        assert (many["stored"], many["duplicate"], many["unknown"]) == (1, 1, 1)
        flood = client.post("/housing/feedback_batch", json={"items": [  # more than may wait: refused, not queued
            {"request_id": "fb-batch", "position": 0, "actual": 1.0}] * (FEEDBACK_QUEUE + 1)})
        assert flood.status_code == 503 and flood.headers["retry-after"] == "1", flood.text
        assert "retry later" in flood.json()["error"]
        metrics = client.get("/metrics").text
    stored = log_rows(ab_server, "SELECT request_id, position, actual FROM feedback ORDER BY request_id")
    assert [(r, p, json.loads(a)) for r, p, a in stored] == [("fb-1", 0, actual), ("fb-batch", 2, 100000.0)]
    served = answer.json()
    live_rmse = abs(batch.json()["predictions"][2] - 100000.0) if served["model"] == batch.json()["model"] else None
    line = next(m for m in metrics.splitlines()
                if m.startswith("model_live_rmse_usd{") and f'model="{served["model"]}"' in m)
    value = float(line.rsplit(" ", 1)[1])
    expected = [abs(served["prediction"] - actual)] + ([live_rmse] if live_rmse is not None else [])
    assert value == pytest.approx(float(np.sqrt(np.mean(np.square(expected)))), rel=1e-6)
    assert f'model_reference_rmse_usd{{model="{served["model"]}",task="housing"}}' in metrics


@pytest.fixture(scope="module")
def shadow_answers(challenger_home: Path, tmp_path_factory: pytest.TempPathFactory, records):
    """The same requests answered by an `off` server and by a `shadow` one (kept running for the next tests)."""
    housing = ([features(r, "housing") for r in records["housing"]] * 4)[:300]  # >= min_pairs of params.yaml
    iris = [features(r, "iris") for r in records["iris"]] * 4  # 120 requests: enough pairs to judge

    def ask(live: LiveServer) -> list[dict[str, Any]]:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            return [client.post(f"/{task}/predict", json=row, headers={"X-Request-ID": f"{task}-{i}"}).json()
                    for task, rows in (("housing", housing), ("iris", iris)) for i, row in enumerate(rows)]

    off = serve(challenger_home, tmp_path_factory.mktemp("off"))
    try:
        plain = ask(off)
    finally:
        off.stop()
    live = serve(challenger_home, tmp_path_factory.mktemp("shadow"), housing="shadow", iris="shadow")
    try:
        yield plain, ask(live), live
    finally:
        live.stop()


def test_shadow_leaves_answers_identical_and_logs_the_challenger(shadow_answers, built_repo: PipelineRepo) -> None:
    plain, shadowed, live = shadow_answers
    assert shadowed == plain  # same predictions, models, arms and request ids
    total = len(plain)
    wait_for(lambda: log_rows(live, "SELECT COUNT(*) FROM predictions WHERE arm = 'shadow'")[0][0] == total)
    rows = log_rows(live, "SELECT inputs, prediction, model FROM predictions WHERE arm = 'shadow' AND task = 'housing'"
                          " ORDER BY CAST(SUBSTR(request_id, 9) AS INTEGER)")
    assert {model for _, _, model in rows} == {"housing-regressor-challenger:test"}
    forest = joblib.load(built_repo.path / "models/housing/candidates/housing-forest/model.joblib")
    frame = pd.DataFrame([json.loads(inputs) for inputs, _, _ in rows])
    np.testing.assert_allclose([json.loads(p) for _, p, _ in rows], forest.predict(frame), rtol=1e-9)
    answered = log_rows(live, "SELECT COUNT(*) FROM predictions WHERE arm = 'champion'")[0][0]
    assert answered == total


def monitor(live: LiveServer, task: str, out: Path) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "monitoring.performance", "--task", task, "--log-dir",
                             str(live.log_dir), "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    return result.returncode, json.loads((out / f"{task}-performance.json").read_text())


def test_monitor_sees_a_truly_better_challenger_and_nothing_when_equal(shadow_answers, tmp_path: Path) -> None:
    """Housing: the true values follow the challenger (the champion errs more): exit 5. Iris: the true values
    are whatever both models said where they agree, and alternate where they differ: no verdict."""
    _, _, live = shadow_answers
    pairs = log_rows(live, "SELECT request_id, arm, prediction FROM predictions WHERE arm IN ('champion', 'shadow')")
    by_request: dict[str, dict[str, Any]] = {}
    for request_id, arm, prediction in pairs:
        by_request.setdefault(request_id, {})[arm] = json.loads(prediction)
    rng = np.random.default_rng(0)
    housing, iris = [], []
    for request_id, arms in sorted(by_request.items()):
        if request_id.startswith("housing-"):
            actual = arms["shadow"] + float(rng.normal(0, 2000))
            housing.append({"request_id": request_id, "actual": float(np.clip(actual, 1, 9_000_000))})
        else:
            champion, challenger = arms["champion"]["species"], arms["shadow"]["species"]
            iris.append({"request_id": request_id,
                         "actual": champion if (champion == challenger or len(iris) % 2) else challenger})
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for task, items in (("housing", housing), ("iris", iris)):
            answer = client.post(f"/{task}/feedback_batch", json={"items": items}).json()
            assert answer["stored"] == len(items), answer
    code, report = monitor(live, "housing", tmp_path)
    assert code == 5, report
    assert "better" in json.dumps(report["verdict"])
    code, report = monitor(live, "iris", tmp_path)
    assert code == 0, report
    assert report["verdict"] == "no significant difference", report
