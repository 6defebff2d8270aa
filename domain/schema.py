"""The raw fields of each task: names, types, ranges, and what kind of prediction the task makes.

One source of truth: preprocess validates the raw CSV against these specs and the service builds its
request models from them, so a value the pipeline would reject is rejected at serving time too, with
the same bounds. Code that differs between regression and classification asks `TaskSchema.kind`,
never the task's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

# California with a margin of about half a degree on each side.
CALIFORNIA_LONGITUDE = (-125.0, -113.5)
CALIFORNIA_LATITUDE = (32.0, 42.5)

# A census block group holds 600 to 3,000 people; the 1990 file's largest has 35,682 people and
# 39,320 rooms. Ten times that is still accepted, a typo of a few orders of magnitude is not.
MAX_POPULATION = 400_000
MAX_ROOMS = 400_000

OCEAN_PROXIMITY = ("<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND")
IRIS_SPECIES = ("setosa", "versicolor", "virginica")


class Kind(StrEnum):
    REGRESSION = "regression"
    CLASSIFICATION = "classification"


@dataclass(frozen=True)
class NumericField:
    """A float column with inclusive, finite bounds: the plausible range of the quantity, wider than any
    training data, so that a value no census block group (or flower) can have is rejected by preprocess
    and by the service alike. `nullable`: the value may be missing (null or absent); the model imputes it."""

    name: str
    description: str
    minimum: float
    maximum: float
    nullable: bool = False
    unit: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum) and self.minimum <= self.maximum):
            raise ValueError(f"{self.name}: bounds must be finite with minimum <= maximum, "
                             f"got [{self.minimum}, {self.maximum}]")


@dataclass(frozen=True)
class CategoryField:
    name: str
    description: str
    categories: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True)
class TaskSchema:
    """Features a client sends, plus the label column of the raw file.

    `model_name` names the champion in the MLflow registry and the BentoML model store (`challenger_name`
    the challenger in the store; in the registry it is a version of `model_name` with the alias `challenger`);
    `prediction_metric` is the Prometheus metric of its predictions (a histogram of values for
    regression with `prediction_buckets`, a counter by class for classification);
    `feature_transformer` ("module:Class") derives the model's features from the raw fields, if the task
    has one. It is named, not imported, so another task's pipeline never depends on that code.
    """

    task: str
    kind: Kind
    features: tuple[NumericField | CategoryField, ...]
    target: NumericField | CategoryField
    model_name: str
    prediction_metric: str
    prediction_buckets: tuple[float, ...] = ()
    feature_transformer: str = ""
    # Pairs (smaller, larger): the first may not exceed the second in the same row.
    not_greater_than: tuple[tuple[str, str], ...] = field(default=())

    @property
    def challenger_name(self) -> str:
        """The BentoML store's name of the served challenger (the model to try next, stage `promote`)."""
        return f"{self.model_name}-challenger"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if isinstance(f, NumericField)]

    @property
    def columns(self) -> list[str]:
        return [*self.feature_names, self.target.name]

    @property
    def classes(self) -> tuple[str, ...]:
        """The labels a classifier predicts; empty for regression."""
        return self.target.categories if isinstance(self.target, CategoryField) else ()


HOUSING = TaskSchema(
    task="housing",
    kind=Kind.REGRESSION,
    features=(
        NumericField("longitude", "block group centroid longitude", *CALIFORNIA_LONGITUDE, unit="degrees"),
        NumericField("latitude", "block group centroid latitude", *CALIFORNIA_LATITUDE, unit="degrees"),
        NumericField("housing_median_age", "median age of the houses", 0, 200, unit="years"),
        NumericField("total_rooms", "rooms in the block group", 0, MAX_ROOMS),
        NumericField("total_bedrooms", "bedrooms in the block group; null or absent if unknown (the model imputes "
                     "it from total_rooms)", 0, MAX_ROOMS, nullable=True),
        NumericField("population", "people living in the block group", 0, MAX_POPULATION),
        NumericField("households", "households in the block group", 1, MAX_POPULATION),
        NumericField("median_income", "median household income", 0, 100, unit="tens of thousands of US dollars"),
        CategoryField("ocean_proximity", "distance class to the ocean", OCEAN_PROXIMITY, required=False),
    ),
    target=NumericField("median_house_value", "median house value", 0, 10_000_000, unit="US dollars"),
    not_greater_than=(("total_bedrooms", "total_rooms"),),
    model_name="housing-regressor",
    prediction_metric="housing_prediction_value_usd",
    feature_transformer="domain.features:HousingFeatures",
    prediction_buckets=(50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 350_000, 400_000, 450_000, 500_000,
                        600_000),
)

IRIS = TaskSchema(
    task="iris",
    kind=Kind.CLASSIFICATION,
    features=tuple(
        NumericField(name, f"{name.replace('_', ' ')} of the flower", 0, 50, unit="cm")
        for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    ),
    target=CategoryField("species", "iris species", IRIS_SPECIES),
    model_name="iris-classifier",
    prediction_metric="iris_predicted_species",
)

SCHEMAS = {schema.task: schema for schema in (HOUSING, IRIS)}
TASKS = tuple(SCHEMAS)
