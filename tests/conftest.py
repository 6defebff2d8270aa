"""Fixtures every tier shares, and the tiers themselves.

The folder a test lives in is its tier and its marker (`pytest -m unit`, `-m "not container"`):
- tests/unit: in process only, no subprocess, no DVC, no server (tests/unit/conftest.py enforces it);
- tests/pipeline: real DVC repositories in temp dirs, real MLflow stores and servers;
- tests/service: live `bentoml serve` processes on loopback;
- tests/container: the Bento's real container image.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from stages.fetch import write_sklearn_dataset
from tests.support import PROJECT_ROOT
from tests.support.data_factory import housing_frame
from tests.support.dvc_repo import PipelineRepo
from tests.support.tasks import IRIS

# container_engine, bento_image_builder; postgres (the session's PostgreSQL cluster), postgres_database
pytest_plugins = ["tests.support.container", "tests.support.postgres"]

TIERS = ("unit", "pipeline", "service", "container")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the name of the folder under tests/ it lives in."""
    for item in items:
        parts = Path(item.path).relative_to(PROJECT_ROOT / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


def pytest_configure(config: pytest.Config) -> None:
    """Keep the session's BentoML models and Bentos out of the user's ~/bentoml: a fresh store,
    inherited by every `dvc repro` (package stage) and `bentoml` process the tests start."""
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bentoml-home-")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.get("BENTOML_HOME", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def small_housing_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "housing.csv"
    housing_frame(rows=400, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory: pytest.TempPathFactory, small_housing_csv: Path) -> PipelineRepo:
    """The pipeline reproduced once from nothing on small data, as `make run` leaves it: released to its MLflow
    registry and its served set saved in the session's BentoML store, which the service tests serve
    (SERVED_MODELS names it). Read-only: clone to mutate."""
    repo = PipelineRepo.create(tmp_path_factory.mktemp("built") / "repo", small_housing_csv)
    result = repo.repro()
    repo.first_repro_output = result.output  # type: ignore[attr-defined]
    repo.release()
    repo.commit_all("reproduced")
    repo.save_served_set()
    os.environ["SERVED_MODELS"] = str(repo.path)
    return repo


@pytest.fixture
def repo(built_repo: PipelineRepo, tmp_path: Path) -> PipelineRepo:
    """A private, already reproduced copy of the pipeline repository."""
    return built_repo.clone_to(tmp_path / "repo")


@pytest.fixture(scope="session")
def real_housing_csv() -> Path:
    """The real dataset, named by HOUSING_CSV; CI sets REQUIRE_REAL_DATA=1 so absence fails there."""
    path = Path(os.environ.get("HOUSING_CSV") or "housing.csv")
    if not path.is_file():
        if os.environ.get("REQUIRE_REAL_DATA") == "1":
            pytest.fail(f"REQUIRE_REAL_DATA=1 but the real housing data is missing at {path} (set HOUSING_CSV)")
        pytest.skip(f"real housing data not found at {path}; set HOUSING_CSV to run this test")
    return path


@pytest.fixture(scope="session")
def bento_tag(built_repo: PipelineRepo) -> str:
    """`make bento` of the session's pipeline (the project's service code, its served set and exactly those
    models): the Bento's tag."""
    return built_repo.build_bento()


@pytest.fixture
def mlflow_tracking_uri():
    """Set MLflow's process-wide tracking URI for one test (the returned function) and unset it afterwards.

    `mlflow.set_tracking_uri` sets a module global that wins over MLFLOW_TRACKING_URI and also exports that
    variable to every later subprocess: left set, it would point other tests at this test's store.
    """
    import mlflow

    yield mlflow.set_tracking_uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def train_only_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding params.yaml and the training splits, and no test split at all."""
    frame = housing_frame(rows=300, seed=5, exact=True)
    housing = tmp_path / "data" / "prepared" / "housing"
    housing.mkdir(parents=True)
    frame.to_csv(housing / "train.csv", index=False)
    iris = tmp_path / "data" / "prepared" / "iris"
    iris.mkdir(parents=True)
    write_sklearn_dataset("iris", IRIS, tmp_path / "iris.csv")
    pd.read_csv(tmp_path / "iris.csv").iloc[::5].to_csv(iris / "train.csv", index=False)  # 30 rows, 10 per class
    monkeypatch.chdir(tmp_path)
    return tmp_path
