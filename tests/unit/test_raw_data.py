"""Bad raw data is rejected with a message naming file, column and CSV line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from domain.schema import NumericField
from stages.rawdata import RawDataError, read_raw_csv, validate_raw
from tests.support.data_factory import housing_frame
from tests.support.tasks import HOUSING, IRIS, SCHEMAS


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
         "'households' has values outside [1, 400000] at line 2"),
        (lambda f: f.assign(total_rooms=lambda d: d.total_rooms.where(d.index != 5, 1e308)),
         "'total_rooms' has values outside [0, 400000] at line 7"),
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


def test_every_numeric_field_has_a_finite_plausible_range() -> None:
    for schema in SCHEMAS.values():
        for spec in (*schema.features, schema.target):
            if isinstance(spec, NumericField):
                assert -1e9 < spec.minimum < spec.maximum < 1e9, spec.name
    with pytest.raises(ValueError, match="finite"):
        NumericField("x", "unbounded", 0, float("inf"))


def test_the_real_housing_data_lies_within_the_ranges(real_housing_csv: Path) -> None:
    """The ranges are wider than the data the models were trained on: the real file passes unchanged."""
    raw = read_raw_csv(real_housing_csv)
    out = validate_raw(raw, HOUSING, real_housing_csv)
    assert len(out) == 20640 and out["total_bedrooms"].isna().sum() == 207
    for spec in HOUSING.features:
        if isinstance(spec, NumericField):
            assert spec.minimum <= out[spec.name].min() and out[spec.name].max() <= spec.maximum, spec.name


def test_a_byte_that_is_not_utf8_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "housing.csv"
    lines = housing_frame(5).to_csv(index=False).encode().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"NEAR", b"N\xe9AR", 1) if b"NEAR" in lines[3] else lines[3][:-1] + b"\xff\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(RawDataError) as error:
        read_raw_csv(path)
    assert str(error.value).startswith(f"{path}: not UTF-8 text")
    assert "at line 4" in str(error.value)


def test_a_wrong_field_count_is_reported_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "housing.csv"
    lines = housing_frame(5).to_csv(index=False).splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + ",1,2\n"
    path.write_text("".join(lines))
    with pytest.raises(RawDataError) as error:
        read_raw_csv(path)
    assert str(error.value).startswith(f"{path}: cannot be parsed as CSV")
    assert "line 3" in str(error.value)
