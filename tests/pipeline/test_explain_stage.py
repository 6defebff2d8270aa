"""Stage `explain@<task>` and the service's Shapley code against shap itself.

The service and the stage compute exact Shapley values with the project's own numpy code (domain/explain.py) to
keep shap and numba out of the image and the pipeline; here it must equal `shap.explainers.Exact` with an
independent masker, to 1e-6, on real rows: the session pipeline's iris champion on real iris rows, a housing
model on real census rows (HOUSING_CSV), and the global importance the stage wrote for both tasks. The stage's
outputs: the packaged background, the importance plot, the MLflow artifact.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from domain.explain import ExactShapley, encode, frame_model
from stages.explain import importance, importance_sample, served_model
from stages.rawdata import read_split
from tests.support.dvc_repo import PipelineRepo
from tests.support.shap_reference import shap_values
from tests.support.tasks import HOUSING, IRIS


def _relative_gap(model, background: np.ndarray, rows: np.ndarray) -> float:
    expected = shap_values(model, background, rows)
    explainer = ExactShapley(HOUSING if background.shape[1] == len(HOUSING.features) else IRIS, background)
    ours = np.stack([explainer.explain(x, model).contributions for x in rows])
    assert ours.shape == expected.shape
    return float(np.max(np.abs(ours - expected))) / max(1.0, float(np.max(np.abs(model(rows)))))


def test_iris_champion_equals_shap_on_real_rows(built_repo: PipelineRepo) -> None:
    champion = joblib.load(built_repo.path / "models/iris/champion.joblib")
    background = encode(IRIS, built_repo.json("models/iris/explain_background.json")["records"])
    rows = pd.read_csv(built_repo.path / "data/prepared/iris/test.csv")[IRIS.feature_names]
    gap = _relative_gap(frame_model(IRIS, champion.predict_proba), background, encode(IRIS, rows.to_dict("records")))
    assert gap <= 1e-6


def test_housing_model_equals_shap_on_real_rows(real_housing_csv: Path, built_repo: PipelineRepo) -> None:
    """The session's housing champion (trained on generated data) on real census rows, missing values included."""
    champion = joblib.load(built_repo.path / "models/housing/champion.joblib")
    frame = pd.read_csv(real_housing_csv)
    rows = pd.concat([frame[frame["total_bedrooms"].isna()].head(2), frame.sample(6, random_state=0)])
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in rows[HOUSING.feature_names].to_dict("records")]
    background = encode(HOUSING, built_repo.json("models/housing/explain_background.json")["records"])
    assert _relative_gap(frame_model(HOUSING, champion.predict), background, encode(HOUSING, records)) <= 1e-6


def _importance_plot(repo: PipelineRepo, task: str) -> list[tuple[str, float]]:
    with open(repo.path / f"metrics/plots/importance/{task}.csv", encoding="utf-8") as fh:
        return [(row["raw_field"], float(row["mean_abs_contribution"])) for row in csv.DictReader(fh)]


@pytest.mark.parametrize("task", ["housing", "iris"])
def test_the_stages_importance_is_shaps(built_repo: PipelineRepo, task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The global importance the stage wrote with the service's code equals shap's on the same served predictor,
    background and seeded test rows, field by field (to the CSV's 6 significant digits)."""
    schema = HOUSING if task == "housing" else IRIS
    monkeypatch.chdir(built_repo.path)  # the stage's paths are relative to the repository
    model, _ = served_model(task, joblib.load(built_repo.path / f"models/{task}/served/champion.joblib"))
    background = encode(schema, built_repo.json(f"models/{task}/explain_background.json")["records"])
    settings = built_repo.params()["explain"]
    sample = importance_sample(read_split(task, "test")[0], settings["importance_rows"], settings["seed"])
    expected = dict(importance(schema, shap_values(model, background, encode(schema, sample.to_dict("records")))))
    written = dict(_importance_plot(built_repo, task))
    assert written == pytest.approx(expected, rel=1e-5, abs=1e-9 * max(expected.values()))


@pytest.mark.parametrize("task", ["housing", "iris"])
def test_the_stage_writes_background_importance_and_the_mlflow_artifact(built_repo: PipelineRepo, task: str) -> None:
    schema = HOUSING if task == "housing" else IRIS
    params = built_repo.params()
    background = built_repo.json(f"models/{task}/explain_background.json")
    assert len(background["records"]) == params[task]["explain"]["background_rows"]
    assert background["explainer"] == {key: params["explain"][key] for key in ("max_exact_fields", "samples", "seed")}
    assert all(set(record) == set(schema.feature_names) for record in background["records"])

    ranked = _importance_plot(built_repo, task)
    assert sorted(field for field, _ in ranked) == sorted(schema.feature_names)
    values = [value for _, value in ranked]
    assert values == sorted(values, reverse=True) and min(values) >= 0 and max(values) > 0

    from mlflow.tracking import MlflowClient

    run_id = json.loads((built_repo.path / f"models/{task}/mlflow.json").read_text())["champion_run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{built_repo.path / 'mlflow.db'}")
    assert [a.path for a in client.list_artifacts(run_id, "explain")] == [f"explain/{task}.csv"]


def test_the_background_travels_with_the_bento_model(built_repo: PipelineRepo) -> None:
    import bentoml

    tag = built_repo.json("models/housing/bento_tags.json")["champion"]
    model = bentoml.models.get(tag)
    assert model.custom_objects["explain_background"] == built_repo.json("models/housing/explain_background.json")


def test_a_replaced_tracking_store_is_a_note_not_a_traceback(repo: PipelineRepo) -> None:
    """The MLflow store was replaced since evaluate ran (mlflow.db deleted): models/<task>/mlflow.json names a run
    the new store lacks. Stage explain still writes its outputs and says why the artifact was not logged."""
    (repo.path / "mlflow.db").unlink()
    result = repo.repro("-f", "-s", "explain@iris")
    assert "Traceback" not in result.output, result.output[-3000:]
    run_id = repo.json("models/iris/mlflow.json")["champion_run_id"]
    assert f"explain iris: not logged to MLflow: run {run_id}" in result.output
    assert "is not in the store at sqlite:///" in result.output and "dvc repro -f -s evaluate@iris" in result.output
    assert repo.run("dvc", "status", "explain@iris", check=True).stdout.strip().endswith("up to date.")
