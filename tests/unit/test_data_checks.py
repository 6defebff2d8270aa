"""Checks on a raw file as a whole (stages/datachecks.py): the real data's shape passes the project's limits,
and each useless shape is refused in one line naming the file, the check, the measured value and the limit."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from stages.datachecks import check_whole_file
from stages.params_schema import DataChecks
from stages.rawdata import RawDataError, validate_raw
from tests.support import PROJECT_ROOT
from tests.support.data_factory import housing_frame
from tests.support.tasks import HOUSING, IRIS

PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def limits(task: str, **changes: float) -> dict:
    return {**DataChecks.model_validate(PARAMS[task]["data"]).model_dump(), **changes}


def housing(rows: int = 400) -> pd.DataFrame:
    return validate_raw(housing_frame(rows, seed=3), HOUSING, "housing.csv")


def iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=dict(zip(data.feature_names, IRIS.feature_names, strict=True)))
    return frame.assign(species=[data.target_names[t] for t in data.target]).drop(columns="target")


def refusal(frame: pd.DataFrame, schema, task: str, **changes: float) -> str:
    with pytest.raises(RawDataError) as caught:
        check_whole_file(frame, schema, limits(task, **changes), "data/raw/x.csv", f"{task}.data")
    return str(caught.value)


def test_generated_housing_rows_and_the_real_iris_file_pass() -> None:
    check_whole_file(housing(), HOUSING, limits("housing"), "h.csv", "housing.data")
    check_whole_file(iris(), IRIS, limits("iris"), "i.csv", "iris.data")


def test_identical_rows_are_refused_as_duplicates() -> None:
    same = pd.concat([housing().head(1)] * 300, ignore_index=True)
    assert refusal(same, HOUSING, "housing") == (
        "data/raw/x.csv: check duplicate rows: 99.7% (299 of 300 rows) repeat an earlier row, limit 1.0% "
        "(params.yaml housing.data.max_duplicate_share)")


def test_a_constant_target_too_few_rows_and_a_mostly_empty_field_are_refused() -> None:
    constant = housing().assign(median_house_value=100_000.0)
    assert "check target varies: 'median_house_value' has one value (100000.0) in all 400 rows" in \
        refusal(constant, HOUSING, "housing")
    assert "check minimum rows: 150 rows, limit 200 (params.yaml housing.data.min_rows)" in \
        refusal(housing(150), HOUSING, "housing")
    sparse = housing().assign(total_bedrooms=lambda d: d.total_bedrooms.where(d.index % 4 != 0))
    assert "check missing values in 'total_bedrooms': 26.0% (104 of 400 rows) missing, limit 5.0%" in \
        refusal(sparse, HOUSING, "housing")


def test_a_missing_or_rare_class_is_refused() -> None:
    one_class = iris().query("species == 'setosa'")
    assert "check at least two classes: 'species' has setosa 50, versicolor 0, virginica 0" in \
        refusal(one_class, IRIS, "iris", min_rows=10)
    rare = pd.concat([iris().query("species != 'virginica'"), iris().query("species == 'virginica'").head(5)])
    assert "check rows per class ('species'): class 'virginica' has 5 rows, limit 20" in refusal(rare, IRIS, "iris")
