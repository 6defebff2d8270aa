"""The raw fields of each task: names, types, ranges. One source of truth.

Preprocess validates the raw CSV against these specs; the prediction service builds its
request models from the same specs, so a value the pipeline would reject is also rejected
at serving time, with the same bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# California with a margin of about half a degree on each side.
CALIFORNIA_LONGITUDE = (-125.0, -113.5)
CALIFORNIA_LATITUDE = (32.0, 42.5)

OCEAN_PROXIMITY = ("<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND")
IRIS_SPECIES = ("setosa", "versicolor", "virginica")


@dataclass(frozen=True)
class NumericField:
    """A float column with inclusive bounds. `nullable` only for raw data the model imputes."""

    name: str
    description: str
    minimum: float = -math.inf
    maximum: float = math.inf
    nullable: bool = False
    unit: str = ""


@dataclass(frozen=True)
class CategoryField:
    name: str
    description: str
    categories: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True)
class TaskSchema:
    """Features a client sends, plus the label column of the raw file."""

    task: str
    features: tuple[NumericField | CategoryField, ...]
    target: NumericField | CategoryField
    # Pairs (smaller, larger): the first may not exceed the second in the same row.
    not_greater_than: tuple[tuple[str, str], ...] = field(default=())

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if isinstance(f, NumericField)]

    @property
    def columns(self) -> list[str]:
        return [*self.feature_names, self.target.name]


HOUSING = TaskSchema(
    task="housing",
    features=(
        NumericField("longitude", "block group centroid longitude", *CALIFORNIA_LONGITUDE, unit="degrees"),
        NumericField("latitude", "block group centroid latitude", *CALIFORNIA_LATITUDE, unit="degrees"),
        NumericField("housing_median_age", "median age of the houses", 0, 200, unit="years"),
        NumericField("total_rooms", "rooms in the block group", 0),
        NumericField("total_bedrooms", "bedrooms in the block group", 0, nullable=True),
        NumericField("population", "people living in the block group", 0),
        NumericField("households", "households in the block group", 1),
        NumericField("median_income", "median household income", 0, 1000, unit="tens of thousands of US dollars"),
        CategoryField("ocean_proximity", "distance class to the ocean", OCEAN_PROXIMITY, required=False),
    ),
    target=NumericField("median_house_value", "median house value", 0, unit="US dollars"),
    not_greater_than=(("total_bedrooms", "total_rooms"),),
)

IRIS = TaskSchema(
    task="iris",
    features=tuple(
        NumericField(name, f"{name.replace('_', ' ')} of the flower", 0, 100, unit="cm")
        for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    ),
    target=CategoryField("species", "iris species", IRIS_SPECIES),
)

SCHEMAS = {"housing": HOUSING, "iris": IRIS}


class RawDataError(ValueError):
    """Raw data does not match its schema. The message names the file, column and rows."""


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """Describe offending rows as 1-based line numbers of the CSV (header is line 1)."""
    index = list(mask[mask].index[:limit])
    lines = ", ".join(str(i + 2) for i in index)
    more = int(mask.sum()) - len(index)
    return f"line {lines}" + (f" and {more} more" if more > 0 else "")


def validate_raw(frame: pd.DataFrame, schema: TaskSchema, source: Path | str) -> pd.DataFrame:
    """Check a raw table against the schema and return it with numeric columns as float64.

    Raises RawDataError naming the file, the column and the first offending CSV lines,
    so a user can open the file and see the problem.
    """
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise RawDataError(f"{source}: missing column(s) {', '.join(missing)}; found {found}")
    unknown = [c for c in frame.columns if c not in schema.columns]
    if unknown:
        raise RawDataError(f"{source}: unexpected column(s) {', '.join(map(str, unknown))}")
    if frame.empty:
        raise RawDataError(f"{source}: no data rows")

    out = frame[schema.columns].copy()
    for spec in (*schema.features, schema.target):
        column = out[spec.name]
        if isinstance(spec, NumericField):
            numbers = pd.to_numeric(column, errors="coerce").astype("float64")
            not_numeric = numbers.isna() & column.notna()
            if not_numeric.any():
                example = column[not_numeric].iloc[0]
                raise RawDataError(
                    f"{source}: column {spec.name!r} has non-numeric values ({example!r} at {_rows(not_numeric)})"
                )
            if not spec.nullable and numbers.isna().any():
                raise RawDataError(f"{source}: column {spec.name!r} has missing values at {_rows(numbers.isna())}")
            infinite = np.isinf(numbers)
            if infinite.any():
                raise RawDataError(f"{source}: column {spec.name!r} has infinite values at {_rows(infinite)}")
            outside = (numbers < spec.minimum) | (numbers > spec.maximum)
            if outside.any():
                raise RawDataError(
                    f"{source}: column {spec.name!r} has values outside [{spec.minimum}, {spec.maximum}] "
                    f"at {_rows(outside)}"
                )
            out[spec.name] = numbers
        else:
            present = column.notna()
            if spec.required and not present.all():
                raise RawDataError(f"{source}: column {spec.name!r} has missing values at {_rows(~present)}")
            unknown_values = present & ~column.isin(spec.categories)
            if unknown_values.any():
                example = column[unknown_values].iloc[0]
                raise RawDataError(
                    f"{source}: column {spec.name!r} has unknown category {example!r} at {_rows(unknown_values)}; "
                    f"expected one of {', '.join(spec.categories)}"
                )
            out[spec.name] = column.astype("object")
    for smaller, larger in schema.not_greater_than:
        bad = out[smaller] > out[larger]
        if bad.any():
            raise RawDataError(f"{source}: column {smaller!r} exceeds {larger!r} at {_rows(bad)}")
    return out
