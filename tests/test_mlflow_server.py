"""A team's MLflow tracking server over HTTP: `MLFLOW_TRACKING_URI=http://...` and evaluate logs there.

A real `mlflow server` (SQLite backend, artifacts served by the server itself) on a free 127.0.0.1 port.
Pointing an already reproduced repository at it and re-running only the evaluate stages must fill the
server with every candidate's run and the registered champion, with no retraining; a second evaluate
must reuse those runs rather than log them again; the registered champion must load over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pandas as pd
import pytest

from tests.dvc_repo import PipelineRepo, ran_stages
from tests.live_server import free_port


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "mlflow-server.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # it starts uvicorn via PATH
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "mlflow server not ready after 90 s"
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_evaluate_logs_every_candidate_into_a_team_server(repo: PipelineRepo, mlflow_server: str,
                                                          mlflow_tracking_uri) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    server = {"MLFLOW_TRACKING_URI": mlflow_server}
    first = repo.repro("-f", "-s", "evaluate@iris", env=server)
    assert ran_stages(first.output) == {"evaluate@iris"}  # no retraining

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("iris")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["candidate"] for r in runs) == sorted(repo.params()["iris"]["candidates"])
    for run in runs:
        assert "cv_accuracy_mean" in run.data.metrics and "test_accuracy" in run.data.metrics
        assert run.data.tags["dvc_stage"] == f"train-iris@{run.data.tags['candidate']}"
    champion = repo.json("models/iris/champion.json")
    assert client.get_model_version_by_alias("iris-classifier", "champion").run_id == champion["mlflow_run_id"]

    second = repo.repro("-f", "-s", "evaluate@iris", env=server)
    assert "new runs for none" in second.output
    assert len(client.search_runs([experiment.experiment_id])) == len(runs)
    assert repo.json("models/iris/champion.json")["model_version"] == champion["model_version"]

    mlflow_tracking_uri(mlflow_server)
    rows = pd.read_csv(repo.path / "data/prepared/iris/test.csv").drop(columns="species")
    served = mlflow.pyfunc.load_model("models:/iris-classifier@champion").predict(rows)
    assert list(served) == list(joblib.load(repo.path / "models/iris/champion.joblib").predict(rows))
