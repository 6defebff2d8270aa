"""What the prediction log holds and how a row is stored: file names, tables, row types, encodings.

The service writes these tables (prediction_log/writer.py) and the offline tools read them
(monitoring/logquery.py); both take the names and columns from here.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DB_NAME = "predictions.db"
JSONL_NAME = "predictions.jsonl"

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,              -- ISO 8601 UTC
    request_id TEXT NOT NULL,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    inputs TEXT NOT NULL,          -- JSON object: the record as the client sent it
    prediction TEXT NOT NULL,      -- JSON value
    latency_ms REAL NOT NULL       -- request received -> prediction ready
);
CREATE INDEX IF NOT EXISTS predictions_task_ts ON predictions (task, ts);
CREATE TABLE IF NOT EXISTS request_errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    request_id TEXT NOT NULL,
    task TEXT NOT NULL,
    status INTEGER NOT NULL,       -- HTTP status answered
    error TEXT NOT NULL,           -- JSON: what was wrong
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS request_errors_task_ts ON request_errors (task, ts);
"""


@dataclass(frozen=True)
class PredictionRow:
    request_id: str
    task: str
    model: str
    inputs: dict
    prediction: object
    latency_ms: float
    ts: str = ""


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


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in WAL mode that waits for other workers' write locks instead of failing."""
    connection = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def encode_predictions(rows: list[PredictionRow], now: str) -> tuple[list[tuple], list[str]]:
    """SQLite values and JSON lines of prediction rows, each row's JSON encoded once.

    A line is byte-for-byte what `json.dumps` of the row's dict gives; the fields shared by the
    rows of one request (ts, request id, task, model, latency) are encoded once per request.
    """
    values, lines = [], []
    shared_key, shared, tail = None, "", ""
    for r in rows:
        ts = r.ts or now
        key = (ts, r.request_id, r.task, r.model, r.latency_ms)
        if key != shared_key:
            shared_key = key
            shared = (f'{{"ts": {json.dumps(ts)}, "request_id": {json.dumps(r.request_id)}, '
                      f'"task": {json.dumps(r.task)}, "model": {json.dumps(r.model)}, "inputs": ')
            tail = f', "latency_ms": {json.dumps(r.latency_ms)}}}'
        inputs = json.dumps(r.inputs)
        value = r.prediction  # a finite float's repr is its JSON (the housing case), without json's overhead
        prediction = repr(value) if type(value) is float and math.isfinite(value) else json.dumps(value)
        values.append((ts, r.request_id, r.task, r.model, inputs, prediction, r.latency_ms))
        lines.append(f'{shared}{inputs}, "prediction": {prediction}{tail}')
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


def default_log_dir() -> Path:
    """PREDICTION_LOG_DIR, else logs/ beside the code: the one default of the service and the tools."""
    return Path(os.environ.get("PREDICTION_LOG_DIR") or Path(__file__).resolve().parent.parent / "logs").resolve()
