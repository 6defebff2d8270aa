"""The service's OpenAPI document, served at /docs.json (and so in the Swagger UI at /).

BentoML's generated document describes a generic BentoML service: its 400 is a string, the
answers the request guard gives (401, 413, 415) and the 503/504 are missing, so are GET /model and
the X-API-Key scheme, and it says OpenAPI 3.0.2 while using 3.1's `{"type": "null"}`. This one
is built from the same pydantic models the guard validates with, as OpenAPI 3.1 (whose schemas are
JSON Schema 2020-12, what pydantic writes), so a generated client gets the types the service sends.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bento_service.config import Settings
from bento_service.rejections import MAX_OBJECT_KEYS
from bento_service.schemas import (
    ErrorResponse,
    FeedbackAnswer,
    FeedbackBatchAnswer,
    TaskApi,
    ValidationErrorResponse,
)
from domain.schema import Kind, NumericField

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "ApiKey"

Operation = tuple[str, type[BaseModel], type[BaseModel], str]  # (route, request model, response model, summary)


def _what(api: TaskApi) -> str:
    """What a task predicts, for summaries: 'median house value (US dollars)'."""
    target = api.schema.target
    unit = f" ({target.unit})" if isinstance(target, NumericField) and target.unit else ""
    return f"{target.description}{unit}"


def prediction_operations(api: TaskApi, limits: Settings) -> list[Operation]:
    what, task = _what(api), api.task
    return [(f"/{task}/predict", api.record, api.prediction, f"{task}: the predicted {what} of one record"),
            (f"/{task}/predict_batch", api.batch, api.batch_prediction,
             f"{task}: the predicted {what} of 1 to {limits.max_batch_records} records")]


def explanation_operations(api: TaskApi) -> list[Operation]:
    task = api.task
    per = "" if api.schema.kind is Kind.REGRESSION else f" per {api.schema.target.description},"
    return [(f"/{task}/explain", api.record, api.explanation,
             f"{task}: why /{task}/predict answers what it does:{per} each raw field's contribution (Shapley "
             "values against the model's background sample)")]


def feedback_operations(api: TaskApi, limits: Settings) -> list[Operation]:
    what, task = _what(api), api.task
    return [(f"/{task}/feedback", api.feedback, FeedbackAnswer,
             f"{task}: the true {what} of an answered prediction (its request_id, and position in a batch)"),
            (f"/{task}/feedback_batch", api.feedback_batch, FeedbackBatchAnswer,
             f"{task}: true values of 1 to {limits.max_feedback_items} answered predictions, each item's outcome")]


def _description(apis: list[TaskApi], limits: Settings) -> str:
    served = "\n".join(f"- `{api.task}` ({api.schema.kind}): {_what(api)}" for api in apis)
    return f"""Predictions of models trained and chosen by a reproducible DVC pipeline, one per declared task:

{served}

Every prediction is written to the prediction log before it is answered; if the log cannot be written the
answer is 503.

Limits: request body {limits.max_body_bytes} bytes (413), request line and headers
{limits.max_header_bytes} bytes (431), {MAX_OBJECT_KEYS} keys per JSON object (400),
{limits.max_batch_records} records per batch (400), headers within {limits.header_timeout_s} s (408),
a request answered within 60 s (504). Every number must lie in the range its field documents (400
naming the field). When the server sets API_KEY, prediction routes need the X-API-Key header (401)."""


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _errors(limits: Settings, *statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "invalid request: `detail` names each field and what is wrong with it",
        401: "missing or wrong X-API-Key header (only when the server sets API_KEY)",
        413: f"request body over {limits.max_body_bytes} bytes",
        415: "Content-Type is not application/json",
        404: "no prediction of this task has that request_id and position (nothing stored)",
        409: "that prediction already has its true value: the first one stays",
        429: "this worker is computing and queueing as many explanations as it may (EXPLAIN_CONCURRENCY + "
             "EXPLAIN_QUEUE): retry later; predictions are not limited by this",
        503: "the service is starting (models or prediction log not ready) or the prediction log cannot be "
             "written: nothing was predicted or logged; retry later",
        504: "not answered within the server's timeout (60 s)",
    }
    return {str(status): _json(_ref(ValidationErrorResponse if status == 400 else ErrorResponse),
                               descriptions[status]) for status in statuses}


def _prediction_operation(limits: Settings, request: type[BaseModel], response: type[BaseModel], summary: str,
                          explanation: bool = False) -> dict[str, Any]:
    name = response.__name__ if explanation else request.__name__
    return {
        "tags": ["explanations" if explanation else "predictions"],
        **_operation_body(limits, name, request, response, summary,
                          "the explanation, as logged" if explanation else "the prediction, as logged",
                          (400, 401, 413, 415, *((429,) if explanation else ()), 503, 504)),
    }


def _feedback_operation(limits: Settings, request: type[BaseModel], response: type[BaseModel],
                        summary: str) -> dict[str, Any]:
    single = response is FeedbackAnswer
    return {"tags": ["feedback"],
            **_operation_body(limits, request.__name__, request, response, summary,
                              "stored" if single else "each item's outcome: stored, unknown or duplicate",
                              (400, 401, *((404, 409) if single else ()), 413, 415, 503, 504))}


def _operation_body(limits: Settings, name: str, request: type[BaseModel], response: type[BaseModel], summary: str,
                    ok: str, errors: tuple[int, ...]) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": name[0].lower() + name[1:],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {"200": _json(_ref(response), ok), **_errors(limits, *errors)},
        # with no API_KEY configured the routes are open: an empty requirement says so
        "security": [{SECURITY_SCHEME: []}] if limits.api_key else [{}, {SECURITY_SCHEME: []}],
    }


def _probe(summary: str, ok: str, unavailable: str | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": ok, "content": {"text/plain": {"schema": {"type": "string"}}}}}
    if unavailable:
        responses["503"] = {"description": unavailable, "content": {"application/json": {"schema": {}}}}
    return {"get": {"tags": ["operations"], "summary": summary, "responses": responses}}


MODEL_INFO = {
    "type": "object",
    "description": "per task: the served model's tag, its cross-validation and test metrics, the raw data's md5, "
                   "the git commit and MLflow run and version that produced it",
    "additionalProperties": {"type": "object", "required": ["tag"], "properties": {"tag": {"type": "string"}},
                             "additionalProperties": True},
}


def openapi_document(apis: list[TaskApi], limits: Settings) -> dict[str, Any]:
    """The document of a service serving these tasks under these limits."""
    predictions = [op for api in apis for op in prediction_operations(api, limits)]
    explanations = [op for api in apis for op in explanation_operations(api)]
    feedback = [op for api in apis for op in feedback_operations(api, limits)]
    models = [(m, "validation") for _, m, _, _ in predictions + feedback]
    models += [(m, "serialization") for _, _, m, _ in predictions + explanations + feedback]
    models += [(ValidationErrorResponse, "serialization"), (ErrorResponse, "serialization")]
    _, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    paths: dict[str, Any] = {route: {"post": _prediction_operation(limits, request, response, summary)}
                             for route, request, response, summary in predictions}
    paths.update({route: {"post": _prediction_operation(limits, request, response, summary, explanation=True)}
                  for route, request, response, summary in explanations})
    paths.update({route: {"post": _feedback_operation(limits, request, response, summary)}
                  for route, request, response, summary in feedback})
    paths["/model"] = {"get": {
        "tags": ["models"], "summary": "What is being served: tags, metrics and provenance of both models",
        "operationId": "modelInfo",
        "responses": {"200": _json(MODEL_INFO, "the models"),
                      "503": _json(_ref(ErrorResponse), "models are still loading")},
    }}
    paths["/livez"] = _probe("Liveness: the worker answers", "alive")
    paths["/readyz"] = _probe("Readiness: every worker has its models loaded and a writable prediction log",
                              "ready", "not ready (starting, or the prediction log cannot be written)")
    paths["/metrics"] = _probe("Prometheus metrics", "metrics in the Prometheus text format")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Prediction service", "version": "1", "description": _description(apis, limits)},
        "tags": [{"name": "predictions", "description": "model predictions, each one logged before it is answered"},
                 {"name": "explanations", "description": "why a prediction is what it is, logged like predictions"},
                 {"name": "feedback", "description": "true values of answered predictions, for live accuracy"},
                 {"name": "models", "description": "the served models"},
                 {"name": "operations", "description": "probes and metrics"}],
        "paths": paths,
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "required on prediction routes when the server sets API_KEY"}},
        },
    }
