"""The served housing model, compiled and not: `bentoml serve` on a small HistGradientBoosting champion whose
compiled form is sound, corrupted or missing. Either way every answer equals the scikit-learn model's, and the
server log and GET /model say which predictor serves.

The models are saved by a subprocess into a private BENTOML_HOME (the session's store stays untouched), with a
served set naming them (SERVED_MODELS); iris is the session's model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer

SAVE_MODEL = """
import sys
import bentoml
from threadpoolctl import threadpool_limits
from domain.compiled import FORMAT
from tests.support.tasks import HOUSING
from stages.candidates import build_pipeline
from stages.compile import build_graph
from tests.support.data_factory import housing_frame

case = sys.argv[1]
frame = housing_frame(rows=400, seed=0)
spec = {"estimator": "hist_gradient_boosting_regressor", "seeds": 2,
        "hyperparams": {"max_iter": 20, "max_leaf_nodes": 15, "early_stopping": False}}
with threadpool_limits(1):
    model = build_pipeline("housing", spec, {"neighbor_counts": [3, 8], "neighbor_folds": 3}, 0)
    model.fit(frame[HOUSING.feature_names], frame[HOUSING.target.name])
graph = {"sound": build_graph(model), "corrupt": b"\\x08\\x0a not a graph", "missing": None}[case]
example = frame[HOUSING.feature_names].dropna().head(3).to_dict(orient="records")
compiled = {"compiled": True, "format": FORMAT, "trees": 40} if case != "missing" else {}
bentoml.sklearn.save_model(f"housing-regressor:{case}", model, signatures={"predict": {"batchable": False}},
                           metadata={"input_example": example, "compiled": compiled},
                           custom_objects={"compiled": graph})
"""


def model_home(root: Path, case: str, built_repo: PipelineRepo) -> Path:
    """A BENTOML_HOME with the `case` housing model (saved by a subprocess) and the session's iris model, and a
    served set naming the two, champions alone."""
    home = root / f"home-{case}"
    env = {**os.environ, "BENTOML_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", SAVE_MODEL, case], cwd=PROJECT_ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    iris = Path(os.environ["BENTOML_HOME"]) / "models" / "iris-classifier"
    (home / "models" / "iris-classifier").symlink_to(iris)
    iris_tag = json.loads((built_repo.path / "models/iris/bento_tags.json").read_text())["champion"]
    (home / "bento_models.json").write_text(json.dumps({"housing": {"champion": f"housing-regressor:{case}"},
                                                        "iris": {"champion": iris_tag}}))
    return home


@pytest.fixture(scope="module", params=["sound", "corrupt", "missing"])
def served(request, built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"compiled-{request.param}")
    home = model_home(root, request.param, built_repo)
    live = LiveServer("bento_service.service:PredictionService", root / "logs",
                      env={"BENTOML_HOME": str(home), "SERVED_MODELS": str(home / "bento_models.json")},
                      work_dir=root)
    try:
        live.wait_ready()
        yield request.param, live
    finally:
        live.stop()


def test_answers_equal_scikit_learn_and_the_predictor_is_named(served, built_repo: PipelineRepo) -> None:
    case, live = served
    frame = pd.read_csv(built_repo.path / "data/prepared/housing/test.csv").drop(columns="median_house_value")
    records = [{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
               for row in frame.head(20).to_dict(orient="records")]
    batch = httpx.post(f"{live.url}/housing/predict_batch", json={"records": records}, timeout=30)
    single = httpx.post(f"{live.url}/housing/predict", json=records[0], timeout=30)
    assert batch.status_code == single.status_code == 200

    info = httpx.get(f"{live.url}/model", timeout=30).json()["housing"]
    assert info["tag"] == f"housing-regressor:{case}"
    predictor = info["predictor"]
    log = live.log_text()
    if case == "sound":
        assert predictor["kind"] == "compiled", predictor
        assert "housing: serving the compiled model" in log
    else:
        assert predictor["kind"] == "scikit-learn", predictor
        reason = "does not load" if case == "corrupt" else "carries no compiled form"
        assert reason in predictor["detail"]
        assert f"housing: serving the scikit-learn model: {predictor['detail']}" in log
    assert predictor["compiled_failures"] == 0
    assert "Traceback" not in log

    # the answers are scikit-learn's, whichever predictor gave them (the served model's own file)
    stored = live.log_dir.parent / f"home-{case}" / "models" / "housing-regressor" / case
    model = joblib.load(stored / "saved_model.pkl")
    expected = model.predict(pd.DataFrame.from_records(records))
    assert batch.json()["predictions"] == pytest.approx(list(expected), abs=1.0)
    assert single.json()["prediction"] == pytest.approx(expected[0], abs=1.0)
