"""Bad raw data is rejected with a message naming file, column and CSV line."""

from __future__ import annotations

import pandas as pd
import pytest

from domain.schema import HOUSING, IRIS
from stages.rawdata import RawDataError, validate_raw
from tests.support.data_factory import housing_frame


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
