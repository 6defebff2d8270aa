"""MLflow runs of trained candidates (stages/tracking.py): a run whose logging failed is never reused."""

from __future__ import annotations

from pathlib import Path

import joblib
import pytest
import yaml
from mlflow.tracking import MlflowClient

from stages import tracking
from stages.files import md5sum
from stages.train import train_candidate
from tests.support.data_factory import housing_frame, run_args
from tests.support.dvc_repo import project_fast_params


@pytest.fixture
def trained_linear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_tracking_uri) -> tuple[Path, dict]:
    """A small housing `linear` candidate trained in tmp_path, MLflow's store in tmp_path too."""
    params = project_fast_params()
    prepared = tmp_path / "data" / "prepared" / "housing"
    prepared.mkdir(parents=True)
    housing_frame(rows=300, seed=3).to_csv(prepared / "train.csv", index=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    model, summary = train_candidate("housing", "housing-linear", params)
    model_file = tmp_path / "model.joblib"
    joblib.dump(model, model_file)
    tracking.configure()
    return model_file, summary


def test_a_failed_log_names_the_cause_and_is_not_reused(trained_linear, monkeypatch: pytest.MonkeyPatch) -> None:
    model_file, summary = trained_linear
    # Trust nothing but the declared feature transformer: the housing pipeline holds a KD-tree and our own
    # ClippedRegressor too, so MLflow's skops round trip refuses the model after the run has started.
    trusted = tracking.SKOPS_TRUSTED_TYPES
    monkeypatch.setattr(tracking, "SKOPS_TRUSTED_TYPES", ())
    with pytest.raises(RuntimeError, match="SKOPS_TRUSTED_TYPES") as failure:
        tracking.candidate_run("housing", "housing-linear", model_file, summary, **run_args(summary))
    assert "sklearn.neighbors._kd_tree.KDTree" in str(failure.value)

    client = MlflowClient()
    experiment = client.get_experiment_by_name("housing").experiment_id
    [failed] = client.search_runs([experiment])
    assert failed.info.status == "FAILED" and failed.data.tags["model_md5"] == md5sum(model_file)

    monkeypatch.setattr(tracking, "SKOPS_TRUSTED_TYPES", trusted)
    run = tracking.candidate_run("housing", "housing-linear", model_file, summary, **run_args(summary))
    assert run.logged_now and run.run_id != failed.info.run_id
    assert client.get_run(run.run_id).info.status == "FINISHED"
    again = tracking.candidate_run("housing", "housing-linear", model_file, summary, **run_args(summary))
    assert again.run_id == run.run_id
