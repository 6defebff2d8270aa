"""Request and answer models of every served task, generated from its declaration (domain/schema.py).

One source of truth: a value preprocess would reject in the raw data is rejected here too, with the same
bounds. Requests are strict: unknown fields, wrong types, NaN and infinities are errors, never coerced.
A field whose name is not a Python identifier ("unit/price", "2nd floor") is a model attribute under a
safe name with its declared name as the alias: clients send, and errors and logs name, the declared name.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, create_model, field_validator

from domain.schema import CategoryField, Kind, NumericField, Spec, TaskSchema

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"  # what the guard accepts as a client's X-Request-ID

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def attribute_names(schema: TaskSchema) -> dict[str, str]:
    """Declared field name -> the request model's attribute: the name itself when it is a plain identifier that
    pydantic leaves alone, else `field_<index>`."""
    names = {}
    for index, spec in enumerate(schema.features):
        plain = (spec.name.isidentifier() and not keyword.iskeyword(spec.name) and not spec.name.startswith("_")
                 and not spec.name.startswith("model_") and not hasattr(BaseModel, spec.name))
        names[spec.name] = spec.name if plain else f"field_{index}"
    return names


def _alias(spec: Spec, attribute: str) -> dict[str, Any]:
    return {} if attribute == spec.name else {"alias": spec.name}


def _numeric(spec: NumericField, attribute: str) -> tuple[Any, Any]:
    """A bounded float; a nullable field may also be null or left out (the model imputes it)."""
    unit = f" ({spec.unit})" if spec.unit else ""
    description = f"{spec.description}{unit}; from {spec.minimum:g} to {spec.maximum:g}"
    field = Field(description=description, allow_inf_nan=False, ge=spec.minimum, le=spec.maximum,
                  **_alias(spec, attribute), **({"default": None} if spec.nullable else {}))
    return (float | None if spec.nullable else float), field


def _category(spec: CategoryField, attribute: str) -> tuple[Any, Any]:
    kind = Literal[spec.categories]  # type: ignore[valid-type]
    if spec.required:
        return kind, Field(description=spec.description, **_alias(spec, attribute))
    return kind | None, Field(default=None, description=f"{spec.description}; optional", **_alias(spec, attribute))


def _fields(schema: TaskSchema, attributes: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    return {attributes[spec.name]: _numeric(spec, attributes[spec.name]) if isinstance(spec, NumericField)
            else _category(spec, attributes[spec.name]) for spec in schema.features}


def _not_greater_than(schema: TaskSchema, attributes: dict[str, str]) -> dict[str, Any]:
    """Field validators for the schema's cross-field rules; the error names the smaller field."""
    validators = {}
    for smaller, larger in schema.not_greater_than:
        def check(cls, value: float | None, info: ValidationInfo, larger: str = larger,
                  smaller: str = smaller) -> float | None:
            other = info.data.get(attributes[larger])
            if value is not None and other is not None and value > other:
                raise ValueError(f"{smaller} ({value:g}) must not exceed {larger} ({other:g})")
            return value
        validators[f"check_{attributes[smaller]}"] = field_validator(attributes[smaller])(check)
    return validators


MODEL_TAG = "BentoML model tag that made the prediction"
ARM = "which model answered: the champion, or the challenger (A/B mode, see GET /model)"
REQUEST_ID = "the request's id: the client's X-Request-ID if it is 1-64 characters of [A-Za-z0-9._:-], else a new one"
BASE_VALUE = "the mean prediction over the model's background sample (training rows packaged with the model)"
CONTRIBUTIONS = ("each raw field's Shapley value against the background sample (exact up to explain.max_exact_fields "
                 "fields, 12 by default, a seeded permutation estimate above; GET /model says which); they add up "
                 "to prediction minus base_value")


def _served_by() -> dict[str, Any]:
    return {"model": (str, Field(description=MODEL_TAG)),
            "arm": (Literal["champion", "challenger"], Field(description=ARM)),
            "request_id": (str, Field(description=REQUEST_ID))}


def _unit(spec: Spec) -> str:
    return f" ({spec.unit})" if isinstance(spec, NumericField) and spec.unit else ""


def _answer_models(prefix: str, schema: TaskSchema) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """The answers of predict, predict_batch and explain: the prediction under the declaration's answer name
    (a regression's value, or a classifier's most probable class with every class's probability)."""
    target, answer = schema.target, schema.answer
    if schema.kind is Kind.REGRESSION:
        value = f"predicted {target.description}{_unit(target)}"
        single = create_model(f"{prefix}Prediction", **{answer: (float, Field(description=value))}, **_served_by())
        batch = create_model(f"{prefix}BatchPrediction", predictions=(
            list[float], Field(description=f"{value}, in request order")), **_served_by())
        explanation = create_model(
            f"{prefix}Explanation",
            prediction=(float, Field(description=f"{value}, as /{schema.task}/predict answers")),
            base_value=(float, Field(description=f"{BASE_VALUE}{_unit(target)}")),
            contributions=(dict[str, float], Field(description=f"per raw field: {CONTRIBUTIONS}")),
            model=(str, Field(description=MODEL_TAG)), request_id=(str, Field(description=REQUEST_ID)))
        return single, batch, explanation
    label = (Literal[schema.classes], Field(description=f"the most probable {target.description}"))  # type: ignore[valid-type]
    probabilities = (dict[str, float], Field(description=f"probability of each {target.description}"))
    single = create_model(f"{prefix}Prediction", **{answer: label}, probabilities=probabilities, **_served_by())
    item = create_model(f"{prefix}Class", **{answer: label}, probabilities=probabilities)
    batch = create_model(f"{prefix}BatchPrediction", predictions=(
        list[item], Field(description="one per record, in request order")), **_served_by())  # type: ignore[valid-type]
    explanation = create_model(
        f"{prefix}Explanation", **{answer: label},
        prediction=(dict[str, float], Field(description=f"probability of each {target.description}, as "
                                                        f"/{schema.task}/predict answers")),
        base_value=(dict[str, float], Field(description=f"per {target.description}, {BASE_VALUE}")),
        contributions=(dict[str, dict[str, float]], Field(
            description=f"per {target.description}, probability points per raw field: {CONTRIBUTIONS}")),
        model=(str, Field(description=MODEL_TAG)), request_id=(str, Field(description=REQUEST_ID)))
    return single, batch, explanation


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


def _feedback_model(name: str, schema: TaskSchema, max_batch_records: int) -> type[BaseModel]:
    return create_model(
        name, __config__=STRICT,
        request_id=(str, Field(description=FEEDBACK_REQUEST_ID, pattern=REQUEST_ID_PATTERN)),
        position=(Position, Field(default=0, ge=0, lt=max_batch_records, description=POSITION)),
        actual=_target(schema))


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


@dataclass(frozen=True)
class TaskApi:
    """A served task's request and answer models, named after the task (`loans`: LoansRecord, LoansPrediction ...)."""

    schema: TaskSchema
    attributes: dict[str, str]  # declared field name -> request model attribute (attribute_names)
    record: type[BaseModel]
    batch: type[BaseModel]
    prediction: type[BaseModel]
    batch_prediction: type[BaseModel]
    explanation: type[BaseModel]
    feedback: type[BaseModel]
    feedback_batch: type[BaseModel]

    @property
    def task(self) -> str:
        return self.schema.task

    def routes(self) -> dict[str, type[BaseModel]]:
        """Route -> its request model, for the request guard."""
        task = self.task
        return {f"/{task}/predict": self.record, f"/{task}/predict_batch": self.batch,
                f"/{task}/explain": self.record, f"/{task}/feedback": self.feedback,
                f"/{task}/feedback_batch": self.feedback_batch}


def _camel(task: str) -> str:
    return "".join(part.capitalize() for part in task.split("_"))


def task_api(schema: TaskSchema, max_batch_records: int, max_feedback_items: int) -> TaskApi:
    """Every model of one task's routes, generated from its declaration and the service's size limits."""
    prefix, attributes = _camel(schema.task), attribute_names(schema)
    record = create_model(f"{prefix}Record", __config__=STRICT, __validators__=_not_greater_than(schema, attributes),
                          **_fields(schema, attributes))
    batch = create_model(f"{prefix}Batch", __config__=STRICT, records=(
        list[record], Field(min_length=1, max_length=max_batch_records)))  # type: ignore[valid-type]
    prediction, batch_prediction, explanation = _answer_models(prefix, schema)
    feedback = _feedback_model(f"{prefix}Feedback", schema, max_batch_records)
    feedback_batch = create_model(f"{prefix}FeedbackBatch", __config__=STRICT, items=(
        list[feedback], Field(min_length=1, max_length=max_feedback_items)))  # type: ignore[valid-type]
    return TaskApi(schema, attributes, record, batch, prediction, batch_prediction, explanation, feedback,
                   feedback_batch)
