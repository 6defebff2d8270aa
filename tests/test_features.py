"""Leakage: no row's own target feeds its own feature, and training never reads the test split."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import KFold

from stages.config import load_params
from stages.features import LONGITUDE_SCALE, HousingFeatures
from stages.fetch import write_iris_csv
from stages.schema import HOUSING, OCEAN_PROXIMITY

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COUNTS = (1, 5, 20)


def housing_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Plausible raw block groups in California and a target that depends on place and income.

    Unlike tests/data_factory.py, the target is continuous and never clipped: the leakage tests compare a
    row's neighbour feature with its own target, and tied target values would make that comparison lie.
    """
    rng = np.random.default_rng(seed)
    households = rng.integers(50, 1500, rows).astype(float)
    rooms = households * rng.uniform(3, 7, rows)
    frame = pd.DataFrame({
        "longitude": rng.uniform(-124, -114.5, rows),
        "latitude": rng.uniform(32.6, 41.9, rows),
        "housing_median_age": rng.integers(1, 53, rows).astype(float),
        "total_rooms": rooms,
        "total_bedrooms": rooms * rng.uniform(0.15, 0.25, rows),
        "population": households * rng.uniform(1.5, 4, rows),
        "households": households,
        "median_income": rng.uniform(0.5, 15, rows),
        "ocean_proximity": rng.choice(OCEAN_PROXIMITY[:4], rows),
    })[HOUSING.feature_names]
    target = 40_000 * frame["median_income"] + 5_000 * (frame["latitude"] - 32) + rng.normal(0, 20_000, rows)
    return frame, target.to_numpy()


def neighbour_columns(features: HousingFeatures, matrix: np.ndarray) -> np.ndarray:
    return matrix[:, -len(features.neighbor_counts):]


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return housing_frame(rows=400, seed=3)


def test_changing_a_rows_target_leaves_its_own_out_of_fold_feature_unchanged(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=COUNTS, neighbor_folds=5, random_state=0)
    before = neighbour_columns(features, features.fit_transform(X, y))
    rows = [0, 57, 311]
    poisoned = y.copy()
    poisoned[rows] += 10_000_000  # far outside the data: any use of it would show
    after = neighbour_columns(features, features.fit_transform(X, poisoned))

    np.testing.assert_array_equal(after[rows], before[rows])
    # ...while the poisoned targets do feed other rows' features (the test would see a leak):
    changed = np.any(after != before, axis=1)
    assert changed.sum() >= len(rows) * COUNTS[-1] // 2
    assert np.all(after >= before)  # the poisoned targets only ever raise a mean


def test_out_of_fold_means_are_the_nearest_rows_of_the_other_folds(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=(5,), neighbor_folds=4, random_state=7)
    got = neighbour_columns(features, features.fit_transform(X, y))[:, 0]

    where = np.column_stack([X["longitude"] * LONGITUDE_SCALE, X["latitude"]])
    expected = np.empty(len(y))
    for fit_rows, held_rows in KFold(4, shuffle=True, random_state=7).split(X):
        for row in held_rows:
            distance = np.linalg.norm(where[fit_rows] - where[row], axis=1)
            expected[row] = y[fit_rows][np.argsort(distance)[:5]].mean()
    np.testing.assert_allclose(got, expected)


def test_transform_uses_every_training_row_including_its_own(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=(1,), neighbor_folds=5, random_state=0).fit(X, y)
    # k = 1 at serving time: a training row's nearest block group is itself (all coordinates differ)
    np.testing.assert_allclose(neighbour_columns(features, features.transform(X))[:, 0], y)
    # and out of fold, in training, it never is
    out_of_fold = neighbour_columns(features, features.fit_transform(X, y))[:, 0]
    assert not np.any(np.isclose(out_of_fold, y))


def test_fit_transform_and_transform_agree_except_for_neighbour_means(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=COUNTS, random_state=0)
    fitted = features.fit_transform(X, y)
    served = features.transform(X)
    k = len(COUNTS)
    np.testing.assert_array_equal(fitted[:, :-k], served[:, :-k])
    assert fitted.shape == served.shape == (len(X), len(features.get_feature_names_out()))


# -- the test split is not read before evaluation ------------------------------------------------------

def fast_params() -> dict:
    """The project's params.yaml with the housing champion candidate made cheap (same structure and knobs)."""
    params = copy.deepcopy(load_params.__wrapped__(str(PROJECT_ROOT / "params.yaml")))
    params["cv"]["folds"] = 3
    hgb = params["housing"]["candidates"]["hgb"]
    hgb["hyperparams"]["max_iter"] = 20
    hgb["seeds"] = 2
    hgb["search"]["n_iter"] = 1
    return params


@pytest.fixture
def train_only_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding params.yaml and the training splits, and no test split at all."""
    X, y = housing_frame(rows=300, seed=5)
    housing = tmp_path / "data" / "prepared" / "housing"
    housing.mkdir(parents=True)
    X.assign(median_house_value=y).to_csv(housing / "train.csv", index=False)
    iris = tmp_path / "data" / "prepared" / "iris"
    iris.mkdir(parents=True)
    write_iris_csv(tmp_path / "iris.csv")
    pd.read_csv(tmp_path / "iris.csv").iloc[::5].to_csv(iris / "train.csv", index=False)  # 30 rows, 10 per class
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def opened_files():
    """Paths opened by this process while the test runs (audit hooks see every open, even a caught one)."""
    opened: list[str] = []
    recording = [True]

    def hook(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and isinstance(args[0], (str, os.PathLike)):
            opened.append(os.fspath(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed: stop recording instead
    yield opened
    recording[0] = False


def test_train_candidate_with_a_search_never_opens_the_test_split(train_only_workdir, opened_files):
    from stages.train import train_candidate

    _, summary = train_candidate("housing", "hgb", fast_params())

    assert not any(Path(path).name == "test.csv" for path in opened_files)
    assert any(path.endswith(os.path.join("housing", "train.csv")) for path in opened_files)
    assert summary["train_rows"] == 300 and len(summary["search"]["trials"]) == 2
    assert 0 < summary["cv"]["r2"]["mean"] <= 1


def test_train_stage_runs_without_a_test_split(train_only_workdir, monkeypatch, mlflow_tracking_uri):
    """The whole stage command in a directory where test.csv does not exist; then the MLflow run evaluate logs
    for it (train stages never import MLflow) records the search, and is found again rather than logged twice."""
    params = fast_params()
    (train_only_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update(
        DVC_ROOT=str(train_only_workdir),  # MLflow's database and artifacts land here, not in the project
        PYTHONPATH=str(PROJECT_ROOT),
    )
    result = subprocess.run([sys.executable, "-m", "stages.train", "iris", "logreg"], cwd=train_only_workdir,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train iris@logreg: CV accuracy" in result.stdout
    model_file = train_only_workdir / "models" / "iris" / "candidates" / "logreg" / "model.joblib"
    assert model_file.is_file()
    assert not (train_only_workdir / "data" / "prepared" / "iris" / "test.csv").exists()
    assert not (train_only_workdir / "mlflow.db").exists(), "the train stage touched MLflow"

    # what the stage recorded: the search's choice and every trial's scores
    summary = json.loads((train_only_workdir / "models/iris/candidates/logreg/summary.json").read_text())
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
    run = tracking.candidate_run("iris", "logreg", model_file, summary, raw_md5="0" * 32)
    assert run.logged_now
    client = MlflowClient(tracking_uri=f"sqlite:///{train_only_workdir / 'mlflow.db'}")
    logged = client.get_run(run.run_id)
    assert float(logged.data.params["hyperparams_C"]) == search["best_hyperparams"]["C"]
    assert float(logged.data.params["search_n_iter"]) == params["iris"]["candidates"]["logreg"]["search"]["n_iter"]
    history = client.get_metric_history(run.run_id, "search_accuracy_mean")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
        t["cv"]["accuracy"]["mean"] for t in search["trials"]]
    assert logged.data.metrics["cv_accuracy_std"] == summary["cv"]["accuracy"]["std"]
    assert "cv_recall_virginica_mean" in logged.data.metrics
    assert logged.data.tags["dvc_stage"] == "train-iris@logreg"
    assert logged.data.tags["model_md5"] == tracking.model_md5(model_file)
    assert {a.path for a in client.list_artifacts(run.run_id, "search")} == {
        "search/trials.csv", "search/search.json"}

    # the same model again: the same run; another model file: a new run
    again = tracking.candidate_run("iris", "logreg", model_file, summary, raw_md5="0" * 32)
    assert (again.run_id, again.logged_now) == (run.run_id, False)
    retrained = model_file.with_name("retrained.joblib")
    retrained.write_bytes(model_file.read_bytes() + b"\0")  # joblib ignores trailing bytes; the md5 differs
    other = tracking.candidate_run("iris", "logreg", retrained, summary, raw_md5="0" * 32)
    assert other.logged_now and other.run_id != run.run_id
    import joblib
    import mlflow

    rows = pd.DataFrame(summary["input_example"])
    assert list(mlflow.pyfunc.load_model(other.model_uri).predict(rows)) == list(joblib.load(model_file).predict(rows))
