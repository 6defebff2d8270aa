"""Stage `explain@<task>` and the service's Shapley code against shap itself.

The service computes exact Shapley values with its own numpy code (domain/explain.py) to keep shap and
numba out of the image; here it must equal `shap.explainers.Exact` with an independent masker, to 1e-6,
on real rows: the session pipeline's iris champion on real iris rows, and a housing model on real census
rows (HOUSING_CSV). The stage's outputs: the packaged background, the importance plot, the MLflow artifact.
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from domain.explain import ExactShapley, encode, frame_model
from domain.schema import HOUSING, IRIS
from stages.explain import shap_values
from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo, venv_env


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


@pytest.mark.parametrize("task", ["housing", "iris"])
def test_the_stage_writes_background_importance_and_the_mlflow_artifact(built_repo: PipelineRepo, task: str) -> None:
    schema = HOUSING if task == "housing" else IRIS
    params = built_repo.params()["explain"]
    background = built_repo.json(f"models/{task}/explain_background.json")
    assert len(background["records"]) == params["background_rows"][task]
    assert all(set(record) == set(schema.feature_names) for record in background["records"])

    with open(built_repo.path / f"metrics/plots/importance/{task}.csv", encoding="utf-8") as fh:
        ranked = [(row["field"], float(row["mean_abs_contribution"])) for row in csv.DictReader(fh)]
    assert sorted(field for field, _ in ranked) == sorted(schema.feature_names)
    values = [value for _, value in ranked]
    assert values == sorted(values, reverse=True) and min(values) >= 0 and max(values) > 0

    from mlflow.tracking import MlflowClient

    run_id = json.loads((built_repo.path / f"models/{task}/mlflow.json").read_text())["champion_run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{built_repo.path / 'mlflow.db'}")
    assert [a.path for a in client.list_artifacts(run_id, "explain")] == [f"explain/{task}.csv"]


def test_the_background_travels_with_the_bento_model(built_repo: PipelineRepo) -> None:
    import bentoml

    tag = built_repo.json("models/bento_models.json")["housing"]["champion"]
    model = bentoml.models.get(tag)
    assert model.custom_objects["explain_background"] == built_repo.json("models/housing/explain_background.json")


KERNEL_STATS = """
import json, numpy as np
from stages.explain import shap_values
from stages.shap_kernels import KERNELS
import importlib
rng = np.random.default_rng(0)
values = shap_values(lambda X: X @ np.arange(1.0, 5.0), rng.normal(size=(3, 4)), rng.normal(size=(2, 4)))
kernels = [getattr(importlib.import_module(module), name) for module, name in KERNELS]
print(json.dumps({"values": values.tolist(), "counts": {
    k.__name__: [sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())] for k in kernels}}))
"""


def test_a_second_stage_process_loads_shaps_kernels_instead_of_compiling_them(tmp_path: Path) -> None:
    """stages.explain turns on numba's disk cache for shap's cacheable kernels: the first process compiles and
    stores them, the next one loads every one of them (no miss), writes nothing new to the cache and gets the
    same values. NUMBA_CACHE_DIR keeps the venv's cache out."""
    cache = tmp_path / "numba"
    env = venv_env(NUMBA_CACHE_DIR=str(cache))
    runs, files = [], []
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", KERNEL_STATS], cwd=PROJECT_ROOT, env=env, check=True,
                             capture_output=True, text=True, timeout=300)
        runs.append(json.loads(run.stdout.splitlines()[-1]))
        files.append(sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file()))
    first, second = runs
    assert all(misses >= 1 for _, misses in first["counts"].values()), first
    assert all(hits >= 1 and misses == 0 for hits, misses in second["counts"].values()), second
    assert files[1] == files[0] and any(p.suffix == ".nbc" for p in files[0])  # loaded, not saved again
    assert second["values"] == first["values"]


def test_the_kernel_cache_is_locked_while_shap_runs() -> None:
    """numba writes its cache index without a lock: a second explain process waits for the first one's block."""
    from stages.shap_kernels import LOCK_NAME, cached_kernels, enable_caching

    directory = enable_caching()[0]
    other = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT)  # another open file: flock's unit of ownership
    try:
        with cached_kernels(), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the block ends
    finally:
        os.close(other)
