"""The train stage as DVC runs it: a process of its own that never opens the test split or MLflow,
and the MLflow run evaluate logs from what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import yaml

from stages.files import md5sum
from tests.support import PROJECT_ROOT
from tests.support.data_factory import run_args
from tests.support.dvc_repo import project_fast_params


def test_train_stage_runs_without_a_test_split(train_only_workdir, monkeypatch, mlflow_tracking_uri):
    """The whole stage command in a directory where test.csv does not exist; then the MLflow run evaluate logs
    for it (train stages never import MLflow) records the search, and is found again rather than logged twice."""
    params = project_fast_params()
    (train_only_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update(
        DVC_ROOT=str(train_only_workdir),  # MLflow's database and artifacts land here, not in the project
        PYTHONPATH=str(PROJECT_ROOT),
    )
    result = subprocess.run([sys.executable, "-m", "stages.train", "iris", "iris-logreg"], cwd=train_only_workdir,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train iris-logreg: CV accuracy" in result.stdout
    model_file = train_only_workdir / "models" / "iris" / "candidates" / "iris-logreg" / "model.joblib"
    assert model_file.is_file()
    assert not (train_only_workdir / "data" / "prepared" / "iris" / "test.csv").exists()
    assert not (train_only_workdir / "mlflow.db").exists(), "the train stage touched MLflow"

    # what the stage recorded: the search's choice and every trial's scores
    summary = json.loads((train_only_workdir / "models/iris/candidates/iris-logreg/summary.json").read_text())
    search = summary["search"]
    assert summary["params"]["hyperparams"] == search["best_hyperparams"] and "search" not in summary["params"]
    assert len(summary["input_example"]) == 3

    # ... and what evaluate's MLflow step makes of it
    for name in [k for k in os.environ if k.startswith(("DVC_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DVC_ROOT", str(train_only_workdir))
    from mlflow.tracking import MlflowClient

    from stages import tracking

    tracking.configure()
    run = tracking.candidate_run("iris", "iris-logreg", model_file, summary, **run_args(summary))
    assert run.logged_now
    client = MlflowClient(tracking_uri=f"sqlite:///{train_only_workdir / 'mlflow.db'}")
    logged = client.get_run(run.run_id)
    assert float(logged.data.params["hyperparams_C"]) == search["best_hyperparams"]["C"]
    assert float(logged.data.params["search_n_iter"]) == params["candidates"]["iris-logreg"]["search"]["n_iter"]
    history = client.get_metric_history(run.run_id, "search_accuracy_mean")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
        t["cv"]["accuracy"]["mean"] for t in search["trials"]]
    assert logged.data.metrics["cv_accuracy_std"] == summary["cv"]["accuracy"]["std"]
    assert "cv_recall_virginica_mean" in logged.data.metrics
    assert logged.data.tags["dvc_stage"] == "train@iris-logreg"
    assert logged.data.tags["model_md5"] == md5sum(model_file)
    assert {a.path for a in client.list_artifacts(run.run_id, "search")} == {
        "search/trials.csv", "search/search.json"}

    # the same model again: the same run; another model file: a new run
    again = tracking.candidate_run("iris", "iris-logreg", model_file, summary, **run_args(summary))
    assert (again.run_id, again.logged_now) == (run.run_id, False)
    retrained = model_file.with_name("retrained.joblib")
    retrained.write_bytes(model_file.read_bytes() + b"\0")  # joblib ignores trailing bytes; the md5 differs
    other = tracking.candidate_run("iris", "iris-logreg", retrained, summary, **run_args(summary))
    assert other.logged_now and other.run_id != run.run_id
    import joblib
    import mlflow

    rows = pd.DataFrame(summary["input_example"])
    assert list(mlflow.pyfunc.load_model(other.model_uri).predict(rows)) == list(joblib.load(model_file).predict(rows))
