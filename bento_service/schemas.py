"""Request and response models, generated from the raw-field specs the pipeline validates with (domain/schema.py).

One source of truth: a value preprocess would reject in the raw data is rejected here too,
with the same bounds. Requests are strict: unknown fields, wrong types, NaN and infinities
are errors, never coerced.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from bento_service.config import SETTINGS
from domain.schema import HOUSING, IRIS, CategoryField, NumericField, TaskSchema

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _numeric(spec: NumericField) -> tuple[Any, Any]:
    bounds = {}
    if math.isfinite(spec.minimum):
        bounds["ge"] = spec.minimum
    if math.isfinite(spec.maximum):
        bounds["le"] = spec.maximum
    unit = f" ({spec.unit})" if spec.unit else ""
    return float, Field(description=f"{spec.description}{unit}", allow_inf_nan=False, **bounds)


def _category(spec: CategoryField) -> tuple[Any, Any]:
    kind = Literal[spec.categories]  # type: ignore[valid-type]
    if spec.required:
        return kind, Field(description=spec.description)
    return kind | None, Field(default=None, description=f"{spec.description}; optional")


def _fields(schema: TaskSchema) -> dict[str, tuple[Any, Any]]:
    return {spec.name: _numeric(spec) if isinstance(spec, NumericField) else _category(spec)
            for spec in schema.features}


def _not_greater_than(schema: TaskSchema) -> dict[str, Any]:
    """Field validators for the schema's cross-field rules; the error names the smaller field."""
    validators = {}
    for smaller, larger in schema.not_greater_than:
        def check(cls, value: float, info: ValidationInfo, larger: str = larger, smaller: str = smaller) -> float:
            other = info.data.get(larger)
            if other is not None and value > other:
                raise ValueError(f"{smaller} ({value:g}) must not exceed {larger} ({other:g})")
            return value
        validators[f"check_{smaller}"] = field_validator(smaller)(check)
    return validators


def _record_model(name: str, schema: TaskSchema) -> type[BaseModel]:
    return create_model(name, __config__=STRICT, __validators__=_not_greater_than(schema), **_fields(schema))


HousingRecord = _record_model("HousingRecord", HOUSING)
IrisRecord = _record_model("IrisRecord", IRIS)


class HousingBatch(BaseModel):
    model_config = STRICT
    records: list[HousingRecord] = Field(min_length=1, max_length=SETTINGS.max_batch_records)  # type: ignore[valid-type]


class HousingPrediction(BaseModel):
    prediction: float = Field(description="predicted median house value in US dollars")
    model: str = Field(description="BentoML model tag that made the prediction")
    request_id: str


class HousingBatchPrediction(BaseModel):
    predictions: list[float]
    model: str
    request_id: str


class IrisPrediction(BaseModel):
    species: str
    probabilities: dict[str, float]
    model: str
    request_id: str


# Route -> (task, request model) for the request guard.
ROUTES: dict[str, tuple[str, type[BaseModel]]] = {
    "/housing/predict": ("housing", HousingRecord),
    "/housing/predict_batch": ("housing", HousingBatch),
    "/iris/predict": ("iris", IrisRecord),
}
