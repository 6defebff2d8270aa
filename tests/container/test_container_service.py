"""The real service's container image: built from the project's Bento, run on loopback with a log
volume and an API key, answering both tasks, then stopped gracefully with every request logged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import joblib
import pandas as pd
import pytest

from scripts import container as tooling
from tests.service.test_service import HOUSING_ROW, IRIS_ROW
from tests.support.container import image_config, modules_in_image, port_is_open, start_container
from tests.support.dvc_repo import PipelineRepo
from tests.support.tasks import served_set

KEY = {"X-API-Key": "container-key"}


@pytest.fixture(scope="session")
def service_image(bento_image_builder, bento_tag: str) -> str:
    return bento_image_builder(bento_tag)  # exactly the Bento `make bento` built, not the newest of its name


def test_image_is_non_root_lean_probed_and_free_of_training_packages(container_engine, service_image: str) -> None:
    config = image_config(container_engine, service_image)
    assert config["User"].split(":")[0] == str(tooling.BENTO_UID)
    assert f"{tooling.SERVICE_PORT}/tcp" in config["ExposedPorts"]
    assert tooling.PREDICTION_LOG_DIR in config["Volumes"]
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    assert "OMP_NUM_THREADS=1" in config["Env"]
    print(f"image size: {config['Size'] / 1e6:.0f} MB")
    assert config["Size"] < tooling.IMAGE_SIZE_TARGET_MB * 1e6, f"{config['Size'] / 1e6:.0f} MB"
    present = modules_in_image(container_engine, service_image, ["sklearn", "pandas", "mlflow", "dvc", "pytest"])
    assert present == ["sklearn", "pandas"]


def test_container_serves_both_tasks_and_logs_every_request(container_engine, service_image: str,
                                                            built_repo: PipelineRepo, tmp_path: Path) -> None:
    log_dir = tmp_path / "predictions"
    champion = joblib.load(built_repo.path / "models/housing/champion.joblib")
    expected = float(champion.predict(pd.DataFrame([HOUSING_ROW]))[0])

    with start_container(container_engine, service_image, log_dir, env={"API_KEY": KEY["X-API-Key"]}) as app:
        assert app.get("/livez")[0] == 200
        assert app.post("/iris/predict", IRIS_ROW)[0] == 401
        status, housing = app.post("/housing/predict", HOUSING_ROW, headers=KEY)
        assert status == 200 and housing["prediction"] == pytest.approx(expected, rel=1e-9)
        status, batch = app.post("/housing/predict_batch", {"records": [HOUSING_ROW] * 4}, headers=KEY)
        assert status == 200 and batch["predictions"] == pytest.approx([expected] * 4, rel=1e-9)
        status, iris = app.post("/iris/predict", IRIS_ROW, headers=KEY)
        assert status == 200 and iris["species"] in iris["probabilities"]
        status, error = app.post("/housing/predict", {**HOUSING_ROW, "households": 0}, headers=KEY)
        assert status == 400 and error["detail"][0]["field"] == "households"
        status, error = app.post("/iris/predict", {"sepal_length": 5.0}, headers=KEY)
        assert status == 400 and "petal_width" in json.dumps(error)
        served, info = served_set(built_repo.path), app.get("/model")[1]
        assert housing["model"] == served["housing"]["champion"]  # the served set the image carries, exactly
        assert {task: {"champion": info[task]["tag"], "challenger": info[task]["challenger"]["tag"]}
                for task in served} == served
        assert "predictions_total" in app.get("/metrics")[1]
        port = app.port
    assert app.exit_code == 0, app.logs[-3000:]
    assert "Traceback" not in app.logs
    assert not port_is_open(port)

    with sqlite3.connect(log_dir / "predictions.db") as db:
        ids = [row[0] for row in db.execute("SELECT request_id FROM predictions")]
        errors = db.execute("SELECT COUNT(*) FROM request_errors").fetchone()[0]
    assert sorted(ids) == sorted([housing["request_id"], iris["request_id"]] + [batch["request_id"]] * 4)
    assert errors == 2
    lines = (log_dir / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 6 + 2
