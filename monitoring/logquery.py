"""The query layer over the prediction log: one task's rows in a time window, as data frames.

Everything offline that reads the log (`make report`, `make monitor`) goes through `read_window`,
so the same `--since` selects the same rows everywhere, from SQLite (read-only, safe beside a running
server) or PostgreSQL alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from prediction_log.location import LocationError, LogLocation, resolve, sqlite_in
from prediction_log.schema import ARMS_VERSION

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class LogProblem(Exception):
    """The log cannot answer the question (missing, unreadable, nothing in the window)."""


@dataclass(frozen=True)
class LogWindow:
    task: str
    since: str | None
    predictions: pd.DataFrame  # ts, request_id, model, inputs (dict), prediction (JSON value), latency_ms, arm,
                               # position
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


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """--log-url / --log-dir, defaulting to the service's own location (prediction_log/location.py)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--log-url", help="the store: sqlite:///path/predictions.db or postgresql://user@host/db "
                                         "(default: PREDICTION_LOG_URL, else PREDICTION_LOG_DIR, else the default)")
    where.add_argument("--log-dir", type=Path, help="a SQLite log's directory")


def location_from(args: argparse.Namespace) -> LogLocation:
    try:
        return resolve(url=args.log_url, directory=args.log_dir)
    except LocationError as exc:
        raise LogProblem(str(exc)) from None


def _where(location: LogLocation, task: str | None, since: str | None, answered: bool = False,
           table: str = "") -> tuple[str, tuple]:
    mark = "?" if location.kind == "sqlite" else "%s"
    column = f"{table}." if table else ""
    clauses, args = [], []
    if task is not None:
        clauses.append(f"{column}task = {mark}")
        args.append(task)
    if since:
        clauses.append(f"{column}ts >= {mark}")
        args.append(since)
    if answered:
        clauses.append(f"{column}arm <> 'shadow'")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


@contextlib.contextmanager
def _reader(location: LogLocation) -> Iterator[Any]:
    """A read-only connection to the store (SQLite: the file opened read-only; safe beside a running server)."""
    if location.kind == "sqlite":
        assert location.path is not None
        if not location.path.is_file():
            raise LogProblem(f"no prediction log at {location.path}: has the service answered any request yet? "
                             "(set --log-dir, --log-url or PREDICTION_LOG_URL to where the service logs)")
        try:
            connection = sqlite3.connect(f"file:{location.path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise LogProblem(f"cannot read the prediction log {location}: {exc}") from None
        errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    else:
        import psycopg

        try:
            connection = psycopg.connect(location.conninfo, autocommit=True, connect_timeout=10)
            connection.read_only = True
        except psycopg.Error as exc:
            raise LogProblem(f"cannot reach the prediction log {location}: {exc}") from None
        errors = (psycopg.Error,)
    try:
        yield connection
    except errors as exc:
        raise LogProblem(f"cannot read the prediction log {location}: {exc}") from None
    finally:
        connection.close()


def _schema_version(connection: Any) -> int:
    """The log's schema version. The monitor never migrates (it opens the log read-only): a log a current server
    has not opened yet (an archive, a rollout) is read as its version has it."""
    return int(connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def _frame(connection: Any, query: str, args: tuple, columns: list[str]) -> pd.DataFrame:
    cursor = connection.execute(query, args)
    return pd.DataFrame(cursor.fetchall(), columns=columns)


def _json(value: Any) -> Any:
    """A JSON column as Python: SQLite returns the text, PostgreSQL's JSONB arrives decoded."""
    return json.loads(value) if isinstance(value, str) else value


def _as_location(log: LogLocation | Path | str) -> LogLocation:
    return log if isinstance(log, LogLocation) else sqlite_in(log)


def logged_tasks(log: LogLocation | Path | str, since: str | None) -> list[str]:
    """Tasks with at least one prediction or rejected request in the window, sorted."""
    location = _as_location(log)
    where, args = _where(location, None, since)
    with _reader(location) as connection:
        rows = connection.execute(f"SELECT DISTINCT task FROM predictions{where} UNION "
                                  f"SELECT DISTINCT task FROM request_errors{where}", args + args).fetchall()
    return sorted(row[0] for row in rows)


def read_window(log: LogLocation | Path | str, task: str, since: str | None, shadow: bool = False) -> LogWindow:
    """Predictions and rejected requests of `task` logged at or after `since` (ISO UTC; None: all), in the
    same shape whichever store holds them. Shadow rows (the challenger's, logged but not answered) only with
    `shadow`: they are not traffic, and counting them would double every shadowed request."""
    location = _as_location(log)
    errors_where, errors_args = _where(location, task, since)
    prediction_columns = ["ts", "request_id", "model", "inputs", "prediction", "latency_ms", "arm", "position"]
    error_columns = ["ts", "request_id", "status", "latency_ms"]
    with _reader(location) as connection:
        has_arms = _schema_version(connection) >= ARMS_VERSION
        where, args = _where(location, task, since, answered=has_arms and not shadow)
        selected = prediction_columns if has_arms else [*prediction_columns[:-2], "'champion'", "0"]
        predictions = _frame(connection, f"SELECT {', '.join(selected)} FROM predictions{where} "
                             "ORDER BY id", args, prediction_columns)
        errors = _frame(connection, f"SELECT {', '.join(error_columns)} FROM request_errors{errors_where} "
                        "ORDER BY id", errors_args, error_columns)
    predictions["inputs"] = [_json(value) for value in predictions["inputs"]]
    predictions["prediction"] = [_json(value) for value in predictions["prediction"]]
    for frame in (predictions, errors):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        frame["latency_ms"] = frame["latency_ms"].astype(float)
    return LogWindow(task, since, predictions, errors)


FEEDBACK_COLUMNS = ["ts", "request_id", "position", "model", "arm", "prediction", "actual", "feedback_ts"]


def read_feedback(log: LogLocation | Path | str, task: str, since: str | None) -> pd.DataFrame:
    """Every prediction row of `task` logged at or after `since` that has feedback, with its true value: one row
    per logged prediction (a shadowed record gives two, its champion's and its shadow row; of an arm's predictions
under one reused request id only the newest), in log order.
    Columns FEEDBACK_COLUMNS; prediction and actual are JSON-decoded."""
    location = _as_location(log)
    where, args = _where(location, task, since, table="p")
    query = ("SELECT p.ts, p.request_id, p.position, p.model, p.arm, p.prediction, f.actual, f.ts FROM predictions p "
             "JOIN feedback f ON f.task = p.task AND f.request_id = p.request_id AND f.position = p.position"
             f"{where} ORDER BY p.id")
    with _reader(location) as connection:
        if _schema_version(connection) < ARMS_VERSION:  # an old log no current server has opened: no feedback yet
            return pd.DataFrame(columns=FEEDBACK_COLUMNS)
        frame = _frame(connection, query, args, FEEDBACK_COLUMNS)
    frame["prediction"] = [_json(value) for value in frame["prediction"]]
    frame["actual"] = [_json(value) for value in frame["actual"]]
    for column in ("ts", "feedback_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame["position"] = frame["position"].astype(int)
    # a request id a client reused: its feedback is for the newest prediction of each arm (as the service scores it)
    return frame.drop_duplicates(["request_id", "position", "arm"], keep="last").reset_index(drop=True)
