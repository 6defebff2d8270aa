"""The container tooling end to end on a tiny fixture Bento: build, run on loopback, stop, check the log volume.

What it guards: scripts/container.py (engine config, local base, CA mount, finishing layer) and
tests/container_support.py, independently of the product's service and its container test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import container as tooling
from tests.support.container import image_config, modules_in_image, port_is_open, start_container

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "echo_bento"




@pytest.fixture(scope="session")
def echo_bento_env(container_engine, tmp_path_factory) -> dict[str, str]:
    """The fixture Bento built into a throwaway BENTOML_HOME: the user's store is never touched."""
    home = tmp_path_factory.mktemp("bentoml_home")
    context = tmp_path_factory.mktemp("echo_bento")
    shutil.copytree(FIXTURE, context, dirs_exist_ok=True)
    env = {**os.environ, "BENTOML_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "bentoml", "build", "."], cwd=context, env=env, check=True,
                   capture_output=True)
    return env


@pytest.fixture(scope="session")
def echo_image(bento_image_builder, echo_bento_env) -> str:
    return bento_image_builder("echo", echo_bento_env)


def test_image_is_non_root_lean_and_probed(container_engine, echo_image) -> None:
    config = image_config(container_engine, echo_image)
    assert config["User"].split(":")[0] == str(tooling.BENTO_UID)
    assert f"{tooling.SERVICE_PORT}/tcp" in config["ExposedPorts"]
    assert f"PREDICTION_LOG_DIR={tooling.PREDICTION_LOG_DIR}" in config["Env"]
    assert tooling.PREDICTION_LOG_DIR in config["Volumes"]
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Size"] < tooling.IMAGE_SIZE_TARGET_MB * 1e6, f"{config['Size'] / 1e6:.0f} MB"
    assert modules_in_image(container_engine, echo_image, ["bentoml", "mlflow", "dvc", "pytest"]) == ["bentoml"]


def test_container_serves_logs_to_the_volume_and_stops_cleanly(container_engine, echo_image, tmp_path) -> None:
    log_dir = tmp_path / "predictions"
    with start_container(container_engine, echo_image, log_dir) as app:
        assert app.get("/livez")[0] == 200
        assert app.post("/double", {"x": 2}) == (200, {"y": 4.0})
        assert app.post("/double", {"x": 0.5}) == (200, {"y": 1.0})
        status, body = app.post("/double", {"x": -1})
        assert status == 400 and body["detail"][0]["loc"] == ["x"]
        assert app.post("/double", {"y": 1})[0] == 400
        status, metrics = app.get("/metrics")
        assert status == 200 and "bentoml_service_request_total" in metrics
        port = app.port
    print(f"ready in {app.ready_seconds:.1f} s, stopped in {app.stop_seconds:.1f} s")
    assert app.exit_code == 0, app.logs[-3000:]
    assert "Service instance cleanup finalized" in app.logs  # SIGTERM reached BentoML's shutdown path
    logged = [json.loads(line) for line in (log_dir / "requests.jsonl").read_text().splitlines()]
    assert logged == [{"x": 2.0}, {"x": 0.5}]
    assert not port_is_open(port)
    left = container_engine.command("ps", "-a", "-q", "--filter", f"name={app.name}").stdout
    assert left.strip() == ""
