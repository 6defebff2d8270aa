"""The rows of the prediction log and how each is encoded once for the store and the JSON-lines mirror.

Tables and their versions: prediction_log/schema.py; where the log lives: prediction_log/location.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from prediction_log.sample_key import sample_key

# Which model made a prediction row (champion and challenger): "champion" answered by the champion,
# "challenger" answered by the challenger (A/B mode), "shadow" the challenger's prediction in shadow mode: logged,
# not answered, under the same request id and position as the champion's row.
ARMS = ("champion", "challenger", "shadow")


@dataclass(frozen=True)
class PredictionRow:
    """One logged prediction. `position` is the row's index within its request (predict_batch logs many rows under
    one request id), so (task, request_id, position) names the record that feedback refers to."""

    request_id: str
    task: str
    model: str
    inputs: dict
    prediction: object
    latency_ms: float
    ts: str = ""
    arm: str = "champion"
    position: int = 0


@dataclass(frozen=True)
class ExplanationRow(PredictionRow):
    """An answered explanation (table `explanations`, the columns of predictions before version 5: no arm or
    position, an explanation is the champion's): `prediction` holds the prediction, base value and contributions
    as answered. A subclass, so check for it before PredictionRow."""


@dataclass(frozen=True)
class ErrorRow:
    request_id: str
    task: str
    status: int
    error: object
    latency_ms: float
    ts: str = ""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def encode_predictions(rows: list[PredictionRow], now: str) -> tuple[list[tuple], list[str]]:
    """SQLite values and JSON lines of prediction rows, each row's JSON encoded once.

    A line is byte-for-byte what `json.dumps` of the row's dict gives (ts, request_id, task, model, arm,
    position, inputs, prediction, latency_ms); the fields shared by the rows of one request (ts, request id,
    task, model, arm, latency) are encoded once per request. The values end with the row's sample key
    (prediction_log/sample_key.py), which only the store keeps.
    """
    values, lines = [], []
    shared_key, shared, tail = None, "", ""
    for r in rows:
        ts = r.ts or now
        key = (ts, r.request_id, r.task, r.model, r.arm, r.latency_ms)
        if key != shared_key:
            shared_key = key
            shared = (f'{{"ts": {json.dumps(ts)}, "request_id": {json.dumps(r.request_id)}, '
                      f'"task": {json.dumps(r.task)}, "model": {json.dumps(r.model)}, "arm": {json.dumps(r.arm)}, '
                      '"position": ')
            tail = f', "latency_ms": {json.dumps(r.latency_ms)}}}'
        inputs = json.dumps(r.inputs)
        value = r.prediction  # a finite float's repr is its JSON (a regression), without json's overhead
        prediction = repr(value) if type(value) is float and math.isfinite(value) else json.dumps(value)
        position = int(r.position)
        values.append((ts, r.request_id, r.task, r.model, inputs, prediction, r.latency_ms, r.arm, position,
                       sample_key(r.task, r.request_id, position, r.arm, ts)))
        lines.append(f'{shared}{position}, "inputs": {inputs}, "prediction": {prediction}{tail}')
    return values, lines


def encode_explanations(rows: list[ExplanationRow], now: str) -> tuple[list[tuple], list[str]]:
    """SQLite values and JSON lines of explanations; a line carries `"kind": "explanation"`, so a reader of the
    mirror tells them from predictions."""
    values, lines = [], []
    for r in rows:
        ts = r.ts or now
        inputs, explanation = json.dumps(r.inputs), json.dumps(r.prediction)
        values.append((ts, r.request_id, r.task, r.model, inputs, explanation, r.latency_ms))
        lines.append(json.dumps({"ts": ts, "kind": "explanation", "request_id": r.request_id, "task": r.task,
                                 "model": r.model, "inputs": r.inputs, "prediction": r.prediction,
                                 "latency_ms": r.latency_ms}))
    return values, lines


def encode_errors(rows: list[ErrorRow], now: str) -> tuple[list[tuple], list[str]]:
    """SQLite values and JSON lines of rejected requests."""
    values, lines = [], []
    for r in rows:
        ts = r.ts or now
        values.append((ts, r.request_id, r.task, r.status, json.dumps(r.error), r.latency_ms))
        lines.append(json.dumps({"ts": ts, "request_id": r.request_id, "task": r.task, "status": r.status,
                                 "error": r.error, "latency_ms": r.latency_ms}))
    return values, lines
