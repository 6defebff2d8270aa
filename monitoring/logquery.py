"""The query layer over the prediction log: one task's rows in a time window, as data frames.

Everything offline that reads the log (`make report`, `make monitor`) goes through `read_window`,
so the same `--since` selects the same rows everywhere. Reads SQLite read-only, so it is safe
against a running server.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from prediction_log.store import DB_NAME

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class LogProblem(Exception):
    """The log cannot answer the question (missing, unreadable, nothing in the window)."""


@dataclass(frozen=True)
class LogWindow:
    task: str
    since: str | None
    predictions: pd.DataFrame  # ts, request_id, model, inputs (dict), prediction (JSON value), latency_ms
    errors: pd.DataFrame       # ts, request_id, status, latency_ms


def parse_since(text: str | None) -> str | None:
    """'24h' -> ISO timestamp of 24 hours ago (UTC); None -> no lower bound. Raises LogProblem."""
    if not text:
        return None
    match = DURATION.match(text.strip())
    if not match:
        raise LogProblem(f"--since must look like 30m, 24h or 7d, got {text!r}")
    delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    return (datetime.now(UTC) - delta).isoformat(timespec="microseconds")


def since_label(since: str | None) -> str:
    return f"since {since}" if since else "in the whole log"


def _database(log_dir: Path) -> Path:
    db_path = Path(log_dir) / DB_NAME
    if not db_path.is_file():
        raise LogProblem(f"no prediction log at {db_path}: has the service answered any request yet? "
                         "(set --log-dir or PREDICTION_LOG_DIR to the service's log directory)")
    return db_path


def logged_tasks(log_dir: Path, since: str | None) -> list[str]:
    """Tasks with at least one prediction or rejected request in the window, sorted."""
    db_path = _database(log_dir)
    where, args = (" WHERE ts >= ?", (since,)) if since else ("", ())
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT DISTINCT task FROM predictions{where} UNION "
                              f"SELECT DISTINCT task FROM request_errors{where}", args + args).fetchall()
    except sqlite3.Error as exc:
        raise LogProblem(f"cannot read the prediction log {db_path}: {exc}") from None
    return sorted(row[0] for row in rows)


def read_window(log_dir: Path, task: str, since: str | None) -> LogWindow:
    """Predictions and rejected requests of `task` logged at or after `since` (ISO UTC; None: all)."""
    db_path = _database(log_dir)
    where, args = "WHERE task = ?" + (" AND ts >= ?" if since else ""), (task, since) if since else (task,)
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            predictions = pd.read_sql_query(
                f"SELECT ts, request_id, model, inputs, prediction, latency_ms FROM predictions {where} ORDER BY id",
                db, params=args)
            errors = pd.read_sql_query(
                f"SELECT ts, request_id, status, latency_ms FROM request_errors {where} ORDER BY id", db, params=args)
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise LogProblem(f"cannot read the prediction log {db_path}: {exc}") from None
    predictions["inputs"] = [json.loads(text) for text in predictions["inputs"]]
    predictions["prediction"] = [json.loads(text) for text in predictions["prediction"]]
    for frame in (predictions, errors):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return LogWindow(task, since, predictions, errors)
