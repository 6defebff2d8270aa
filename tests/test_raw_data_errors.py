"""Bad raw data fails with a message naming file, column and rows, and leaves no outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from stages.schema import HOUSING, IRIS, RawDataError, validate_raw
from tests.data_factory import housing_frame
from tests.dvc_repo import PipelineRepo, md5sum


def _validate(frame: pd.DataFrame) -> pd.DataFrame:
    return validate_raw(frame, HOUSING, "data/raw/housing.csv")


def test_valid_frame_passes_and_is_numeric() -> None:
    out = _validate(housing_frame(50).astype({"median_income": str}))
    assert out["median_income"].dtype == "float64"


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda f: f.drop(columns="median_income"), "missing column(s) median_income"),
        (lambda f: f.assign(extra=1), "unexpected column(s) extra"),
        (lambda f: f.astype({"population": object}).assign(
            population=lambda d: d.population.where(d.index != 3, "lots")),
         "'population' has non-numeric values ('lots' at line 5)"),
        (lambda f: f.assign(households=lambda d: d.households.where(d.index != 0, 0)),
         "'households' has values outside [1, inf] at line 2"),
        (lambda f: f.assign(median_income=lambda d: d.median_income.where(d.index != 7)),
         "'median_income' has missing values at line 9"),
        (lambda f: f.assign(ocean_proximity=lambda d: d.ocean_proximity.where(d.index != 1, "MARS")),
         "'ocean_proximity' has unknown category 'MARS' at line 3"),
        (lambda f: f.assign(total_bedrooms=lambda d: d.total_bedrooms.where(d.index != 2, d.total_rooms + 1)),
         "'total_bedrooms' exceeds 'total_rooms' at line 4"),
        (lambda f: f.assign(latitude=lambda d: d.latitude.where(d.index != 4, 51.5)),
         "'latitude' has values outside [32.0, 42.5] at line 6"),
        (lambda f: f.iloc[0:0], "no data rows"),
    ],
)
def test_schema_errors_name_file_column_and_line(corrupt, expected: str) -> None:
    with pytest.raises(RawDataError) as error:
        _validate(corrupt(housing_frame(50)))
    assert str(error.value).startswith("data/raw/housing.csv: ")
    assert expected in str(error.value)


def test_missing_bedrooms_are_allowed_for_the_model_to_impute() -> None:
    frame = housing_frame(50).assign(total_bedrooms=lambda d: d.total_bedrooms.where(d.index % 5 != 0))
    expected = int(frame["total_bedrooms"].isna().sum())
    assert expected >= 10
    assert _validate(frame)["total_bedrooms"].isna().sum() == expected


def test_iris_species_must_be_known() -> None:
    frame = pd.DataFrame({"sepal_length": [5.1], "sepal_width": [3.5], "petal_length": [1.4],
                          "petal_width": [0.2], "species": ["daisy"]})
    with pytest.raises(RawDataError, match="unknown category 'daisy'"):
        validate_raw(frame, IRIS, "data/raw/iris.csv")


# -- through DVC: the stage fails, the message is clear, and nothing partial is left ------------

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
    params = repo.params()
    params["data"]["housing"]["url"] = "http://127.0.0.1:9/housing.csv"  # nothing listens on the discard port
    repo.write_params(params)

    result = repo.repro("fetch@housing", check=False, env={"HOUSING_CSV": ""})

    assert result.returncode != 0
    assert "could not download http://127.0.0.1:9/housing.csv" in result.stderr
    assert "set HOUSING_CSV" in result.stderr
    assert not (repo.path / "data/raw/housing.csv").exists()
