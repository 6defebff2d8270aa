"""The service's OpenAPI document, served at /docs.json (and so in the Swagger UI at /).

BentoML's generated document describes a generic BentoML service: its 400 is a string, the
answers the request guard gives (401, 413, 415) and the 503/504 are missing, so are GET /model and
the X-API-Key scheme, and it says OpenAPI 3.0.2 while using 3.1's `{"type": "null"}`. This one
is built from the same pydantic models the guard validates with, as OpenAPI 3.1 (whose schemas are
JSON Schema 2020-12, what pydantic writes), so a generated client gets the types the service sends.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bento_service.config import SETTINGS
from bento_service.rejections import MAX_OBJECT_KEYS
from bento_service.schemas import (
    ErrorResponse,
    FeedbackAnswer,
    FeedbackBatchAnswer,
    HousingBatch,
    HousingBatchPrediction,
    HousingExplanation,
    HousingFeedback,
    HousingFeedbackBatch,
    HousingPrediction,
    HousingRecord,
    IrisExplanation,
    IrisFeedback,
    IrisFeedbackBatch,
    IrisPrediction,
    IrisRecord,
    ValidationErrorResponse,
)

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "ApiKey"

# (route, request model, response model, summary)
PREDICTION_ROUTES: tuple[tuple[str, type[BaseModel], type[BaseModel], str], ...] = (
    ("/housing/predict", HousingRecord, HousingPrediction,
     "Median house value (US dollars) of one census block group"),
    ("/housing/predict_batch", HousingBatch, HousingBatchPrediction,
     f"Median house values of 1 to {SETTINGS.max_batch_records} block groups"),
    ("/iris/predict", IrisRecord, IrisPrediction, "Species of one iris flower from its measurements (cm)"),
)
# (route, request model, response model, summary): the same records as predict, answered with contributions
EXPLANATION_ROUTES: tuple[tuple[str, type[BaseModel], type[BaseModel], str], ...] = (
    ("/housing/explain", HousingRecord, HousingExplanation,
     "Why /housing/predict answers what it does: each raw field's contribution in US dollars (exact Shapley "
     "values against the model's background sample)"),
    ("/iris/explain", IrisRecord, IrisExplanation,
     "Why /iris/predict answers what it does: per species, each raw field's contribution to its probability"),
)

# (route, request model, response model, summary): true values of answered predictions
FEEDBACK_ROUTES: tuple[tuple[str, type[BaseModel], type[BaseModel], str], ...] = (
    ("/housing/feedback", HousingFeedback, FeedbackAnswer,
     "The true median house value of an answered prediction (its request_id, and position in a batch)"),
    ("/housing/feedback_batch", HousingFeedbackBatch, FeedbackBatchAnswer,
     f"True values of 1 to {SETTINGS.max_feedback_items} answered housing predictions, each item's outcome"),
    ("/iris/feedback", IrisFeedback, FeedbackAnswer, "The true species of an answered prediction"),
    ("/iris/feedback_batch", IrisFeedbackBatch, FeedbackBatchAnswer,
     f"True species of 1 to {SETTINGS.max_feedback_items} answered iris predictions, each item's outcome"),
)

DESCRIPTION = f"""Predictions of two models trained and chosen by a reproducible DVC pipeline:
the median house value of a California census block group (1990 census, regression) and the
species of an iris flower (classification). Every prediction is written to the prediction log
(SQLite and JSON lines) before it is answered; if the log cannot be written the answer is 503.

Limits: request body {SETTINGS.max_body_bytes} bytes (413), request line and headers
{SETTINGS.max_header_bytes} bytes (431), {MAX_OBJECT_KEYS} keys per JSON object (400),
{SETTINGS.max_batch_records} records per batch (400), headers within {SETTINGS.header_timeout_s} s (408),
a request answered within 60 s (504). Every number must lie in the range its field documents (400
naming the field). When the server sets API_KEY, prediction routes need the X-API-Key header (401)."""


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "invalid request: `detail` names each field and what is wrong with it",
        401: "missing or wrong X-API-Key header (only when the server sets API_KEY)",
        413: f"request body over {SETTINGS.max_body_bytes} bytes",
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


def _prediction_operation(request: type[BaseModel], response: type[BaseModel], summary: str,
                          explanation: bool = False) -> dict[str, Any]:
    name = response.__name__ if explanation else request.__name__
    return {
        "tags": ["explanations" if explanation else "predictions"],
        **_operation_body(name, request, response, summary,
                          "the explanation, as logged" if explanation else "the prediction, as logged",
                          (400, 401, 413, 415, *((429,) if explanation else ()), 503, 504)),
    }


def _feedback_operation(request: type[BaseModel], response: type[BaseModel], summary: str) -> dict[str, Any]:
    single = response is FeedbackAnswer
    return {"tags": ["feedback"],
            **_operation_body(request.__name__, request, response, summary,
                              "stored" if single else "each item's outcome: stored, unknown or duplicate",
                              (400, 401, *((404, 409) if single else ()), 413, 415, 503, 504))}


def _operation_body(name: str, request: type[BaseModel], response: type[BaseModel], summary: str, ok: str,
                    errors: tuple[int, ...]) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": name[0].lower() + name[1:],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {"200": _json(_ref(response), ok), **_errors(*errors)},
        # with no API_KEY configured the routes are open: an empty requirement says so
        "security": [{SECURITY_SCHEME: []}] if SETTINGS.api_key else [{}, {SECURITY_SCHEME: []}],
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


@cache
def openapi_document() -> dict[str, Any]:
    """The document (built once per process)."""
    models = [(m, "validation") for _, m, _, _ in PREDICTION_ROUTES]
    models += [(m, "validation") for _, m, _, _ in FEEDBACK_ROUTES]
    models += [(m, "serialization") for _, _, m, _ in PREDICTION_ROUTES + EXPLANATION_ROUTES + FEEDBACK_ROUTES]
    models += [(ValidationErrorResponse, "serialization"), (ErrorResponse, "serialization")]
    _, definitions = models_json_schema(models, ref_template=REF)
    paths: dict[str, Any] = {route: {"post": _prediction_operation(request, response, summary)}
                             for route, request, response, summary in PREDICTION_ROUTES}
    paths.update({route: {"post": _prediction_operation(request, response, summary, explanation=True)}
                  for route, request, response, summary in EXPLANATION_ROUTES})
    paths.update({route: {"post": _feedback_operation(request, response, summary)}
                  for route, request, response, summary in FEEDBACK_ROUTES})
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
        "info": {"title": "California Housing and Iris prediction service", "version": "1",
                 "description": DESCRIPTION},
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
