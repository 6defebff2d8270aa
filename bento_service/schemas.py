"""Request and response models, generated from the raw-field specs the pipeline validates with (domain/schema.py).

One source of truth: a value preprocess would reject in the raw data is rejected here too,
with the same bounds. Requests are strict: unknown fields, wrong types, NaN and infinities
are errors, never coerced.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, create_model, field_validator

from bento_service.config import SETTINGS
from domain.schema import HOUSING, IRIS, CategoryField, NumericField, TaskSchema

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"  # what the guard accepts as a client's X-Request-ID

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _numeric(spec: NumericField) -> tuple[Any, Any]:
    """A bounded float; a nullable field may also be null or left out (the model imputes it)."""
    unit = f" ({spec.unit})" if spec.unit else ""
    description = f"{spec.description}{unit}; from {spec.minimum:g} to {spec.maximum:g}"
    field = Field(description=description, allow_inf_nan=False, ge=spec.minimum, le=spec.maximum,
                  **({"default": None} if spec.nullable else {}))
    return (float | None if spec.nullable else float), field


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
        def check(cls, value: float | None, info: ValidationInfo, larger: str = larger,
                  smaller: str = smaller) -> float | None:
            other = info.data.get(larger)
            if value is not None and other is not None and value > other:
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


MODEL_TAG = "BentoML model tag that made the prediction"
ARM = "which model answered: the champion, or the challenger (A/B mode, see GET /model)"
REQUEST_ID = "the request's id: the client's X-Request-ID if it is 1-64 characters of [A-Za-z0-9._:-], else a new one"


class HousingPrediction(BaseModel):
    prediction: float = Field(description="predicted median house value in US dollars")
    model: str = Field(description=MODEL_TAG)
    arm: Literal["champion", "challenger"] = Field(description=ARM)
    request_id: str = Field(description=REQUEST_ID)


class HousingBatchPrediction(BaseModel):
    predictions: list[float] = Field(description="predicted median house values in US dollars, in request order")
    model: str = Field(description=MODEL_TAG)
    arm: Literal["champion", "challenger"] = Field(description=ARM)
    request_id: str = Field(description=REQUEST_ID)


class IrisPrediction(BaseModel):
    species: Literal[IRIS.classes] = Field(description="the most probable species")  # type: ignore[valid-type]
    probabilities: dict[str, float] = Field(description="probability of each species")
    model: str = Field(description=MODEL_TAG)
    arm: Literal["champion", "challenger"] = Field(description=ARM)
    request_id: str = Field(description=REQUEST_ID)


BASE_VALUE = "the mean prediction over the model's background sample (training rows packaged with the model)"
CONTRIBUTIONS = ("each raw field's exact Shapley value against the background sample; they add up to prediction "
                 "minus base_value")


class HousingExplanation(BaseModel):
    prediction: float = Field(description="predicted median house value in US dollars, as /housing/predict answers")
    base_value: float = Field(description=f"{BASE_VALUE}, US dollars")
    contributions: dict[str, float] = Field(description=f"US dollars per raw field: {CONTRIBUTIONS}")
    model: str = Field(description=MODEL_TAG)
    request_id: str = Field(description=REQUEST_ID)


class IrisExplanation(BaseModel):
    species: Literal[IRIS.classes] = Field(description="the most probable species")  # type: ignore[valid-type]
    prediction: dict[str, float] = Field(description="probability of each species, as /iris/predict answers")
    base_value: dict[str, float] = Field(description=f"per species, {BASE_VALUE}")
    contributions: dict[str, dict[str, float]] = Field(
        description=f"per species, probability points per raw field: {CONTRIBUTIONS}")
    model: str = Field(description=MODEL_TAG)
    request_id: str = Field(description=REQUEST_ID)


# -- feedback: the true value of an answered prediction ---------------------------------------------------
FEEDBACK_REQUEST_ID = "request_id of the prediction's answer (its X-Request-ID)"
POSITION = "the record's index in its request: 0 for /predict, 0 to n-1 for /predict_batch"


def _target(schema: TaskSchema) -> tuple[Any, Any]:
    """The true value, bounded as the raw data's label is (preprocess rejects the same values)."""
    spec = schema.target
    if isinstance(spec, CategoryField):
        return Literal[spec.categories], Field(description=f"the true {spec.description}")  # type: ignore[valid-type]
    return float, Field(description=f"the true {spec.description} ({spec.unit}); from {spec.minimum:g} to "
                                    f"{spec.maximum:g}", ge=spec.minimum, le=spec.maximum, allow_inf_nan=False)


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` includes 270.0: accept a float with no fraction as the int it is (strict models
    refuse floats for ints otherwise); 270.5, strings and booleans stay errors."""
    return int(value) if type(value) is float and value.is_integer() else value


Position = Annotated[int, BeforeValidator(_whole_number)]


def _feedback_model(name: str, schema: TaskSchema) -> type[BaseModel]:
    return create_model(
        name, __config__=STRICT,
        request_id=(str, Field(description=FEEDBACK_REQUEST_ID, pattern=REQUEST_ID_PATTERN)),
        position=(Position, Field(default=0, ge=0, lt=SETTINGS.max_batch_records, description=POSITION)),
        actual=_target(schema))


HousingFeedback = _feedback_model("HousingFeedback", HOUSING)
IrisFeedback = _feedback_model("IrisFeedback", IRIS)


def _feedback_batch_model(name: str, item: type[BaseModel]) -> type[BaseModel]:
    return create_model(name, __config__=STRICT, items=(
        list[item], Field(min_length=1, max_length=SETTINGS.max_feedback_items)))  # type: ignore[valid-type]


HousingFeedbackBatch = _feedback_batch_model("HousingFeedbackBatch", HousingFeedback)
IrisFeedbackBatch = _feedback_batch_model("IrisFeedbackBatch", IrisFeedback)
FEEDBACK_STATUS = ("stored: recorded; unknown: no prediction of this task has that request id and position (404 "
                   "alone); duplicate: that prediction already has its true value (409 alone), the first one stays")


class FeedbackAnswer(BaseModel):
    request_id: str
    position: int
    status: Literal["stored", "unknown", "duplicate"] = Field(description=FEEDBACK_STATUS)


class FeedbackBatchAnswer(BaseModel):
    results: list[FeedbackAnswer] = Field(description="one per item, in request order")
    stored: int
    unknown: int
    duplicate: int


# -- error answers (the request guard's and the service's; documented in bento_service/openapi.py) -------
class FieldError(BaseModel):
    field: str = Field(description="path of the offending field, e.g. 'records.3.households', or 'body'")
    message: str


class ValidationErrorResponse(BaseModel):
    """400: the body is not a valid request; `detail` lists the first errors."""

    error: str = Field(description="the first errors in one line")
    request_id: str = Field(description=REQUEST_ID)
    detail: list[FieldError] = Field(description="the first errors (at most 20), one per field")
    errors: int = Field(description="how many errors the request had in all")


class ErrorResponse(BaseModel):
    """Any other error: 401, 413, 415, 429, 503 (with the request id) and 504 (without)."""

    error: str
    request_id: str | None = Field(default=None, description=REQUEST_ID)


# Route -> (task, request model) for the request guard.
ROUTES: dict[str, tuple[str, type[BaseModel]]] = {
    "/housing/predict": ("housing", HousingRecord),
    "/housing/predict_batch": ("housing", HousingBatch),
    "/iris/predict": ("iris", IrisRecord),
    "/housing/explain": ("housing", HousingRecord),
    "/iris/explain": ("iris", IrisRecord),
    "/housing/feedback": ("housing", HousingFeedback),
    "/housing/feedback_batch": ("housing", HousingFeedbackBatch),
    "/iris/feedback": ("iris", IrisFeedback),
    "/iris/feedback_batch": ("iris", IrisFeedbackBatch),
}
