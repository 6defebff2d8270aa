"""A team's MLflow tracking server over HTTP: `MLFLOW_TRACKING_URI=http://...` and evaluate logs there.

A real `mlflow server` (SQLite backend, artifacts served by the server itself) on a free 127.0.0.1 port.
Pointing an already reproduced repository at it and re-running only the evaluate stages must fill the
server with every candidate's run and the registered champion, with no retraining; a second evaluate
must reuse those runs rather than log them again; the registered champion must load over HTTP.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import pandas as pd
import pytest

from scripts.server_process import ServerProcess, free_port
from tests.support.dvc_repo import PipelineRepo, ran_stages


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # it starts uvicorn via PATH
    server = ServerProcess(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        cwd=tmp_path, env=env, output=tmp_path / "mlflow-server.log", ready_url=f"http://127.0.0.1:{port}/health")
    try:
        server.wait_ready(timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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
    tracked = repo.json("models/iris/mlflow.json")
    assert client.get_model_version_by_alias("iris-classifier", "champion").run_id == tracked["champion_run_id"]

    second = repo.repro("-f", "-s", "evaluate@iris", env=server)
    assert "new runs for none" in second.output
    assert len(client.search_runs([experiment.experiment_id])) == len(runs)
    assert repo.json("models/iris/mlflow.json")["model_version"] == tracked["model_version"]

    mlflow_tracking_uri(mlflow_server)
    rows = pd.read_csv(repo.path / "data/prepared/iris/test.csv").drop(columns="species")
    served = mlflow.pyfunc.load_model("models:/iris-classifier@champion").predict(rows)
    assert list(served) == list(joblib.load(repo.path / "models/iris/champion.joblib").predict(rows))
