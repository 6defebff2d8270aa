"""Bad raw data through DVC: the stage fails, the message is clear, and nothing partial is left."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.files import md5sum
from tests.support.data_factory import housing_frame
from tests.support.dvc_repo import PipelineRepo


def _fresh_repo(tmp_path: Path, raw: pd.DataFrame) -> PipelineRepo:
    csv = tmp_path / "housing.csv"
    raw.to_csv(csv, index=False)
    return PipelineRepo.create(tmp_path / "repo", csv, bentoml_home=tmp_path / "bentoml-home")


def test_non_numeric_column_fails_preprocess_cleanly(tmp_path: Path) -> None:
    raw = housing_frame(60).astype({"median_income": object})
    raw.loc[10, "median_income"] = "twelve"
    repo = _fresh_repo(tmp_path, raw)

    result = repo.repro("preprocess@housing", check=False)

    assert result.returncode != 0
    assert "preprocess housing: data/raw/housing.csv: column 'median_income' has non-numeric values" in result.stderr
    assert "line 12" in result.stderr
    assert "Traceback" not in result.output
    assert not (repo.path / "data/prepared/housing").exists()


def test_missing_column_fails_preprocess_cleanly(tmp_path: Path) -> None:
    repo = _fresh_repo(tmp_path, housing_frame(60).drop(columns="households"))
    result = repo.repro("preprocess@housing", check=False)
    assert result.returncode != 0
    assert "missing column(s) households" in result.stderr
    assert "Traceback" not in result.output
    assert not (repo.path / "data/prepared/housing").exists()


def test_wrong_checksum_fails_fetch_and_writes_no_raw_file(tmp_path: Path) -> None:
    repo = _fresh_repo(tmp_path, housing_frame(60))
    (tmp_path / "other.csv").write_text(repo.housing_csv.read_text() + "\n")

    result = repo.repro("fetch@housing", check=False, env={"HOUSING_CSV": str(tmp_path / "other.csv")})

    assert result.returncode != 0
    assert f"checksum mismatch for {tmp_path / 'other.csv'}" in result.stderr
    assert md5sum(tmp_path / "other.csv") in result.stderr
    assert "Traceback" not in result.output
    assert not (repo.path / "data/raw/housing.csv").exists()
    assert not list((repo.path / "data/raw").glob(".housing.csv*")) if (repo.path / "data/raw").exists() else True


def test_unreachable_source_says_what_to_do(tmp_path: Path) -> None:
    repo = _fresh_repo(tmp_path, housing_frame(60))
    declaration = repo.path / "tasks" / "housing.yaml"
    url = repo.declaration("housing")["source"]["url"]  # nothing listens on the discard port:
    declaration.write_text(declaration.read_text().replace(url, "http://127.0.0.1:9/housing.csv"))

    result = repo.repro("fetch@housing", check=False, env={"HOUSING_CSV": ""})

    assert result.returncode != 0
    assert "could not download http://127.0.0.1:9/housing.csv" in result.stderr
    assert "set HOUSING_CSV" in result.stderr
    assert not (repo.path / "data/raw/housing.csv").exists()
