"""The query layer over the prediction log: one task's window of rows, asked of the store.

Everything offline that reads the log (`make report`, `make monitor`) goes through a `Window`, so the same
`--since` selects the same rows everywhere, from SQLite (read-only, safe beside a running server) or
PostgreSQL alike. A window is never loaded: counts, percentiles and distributions are computed by the store
(monitoring/operations.py, monitoring/dialect.py) and drift is judged on a bounded sample the store draws
(monitoring/sample.py), so memory stays flat however many rows the window holds. The window's queries are
range scans of the (task, ts) indexes; `Window.executed` keeps them for a look at their plans.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.schema import task_names
from monitoring.dialect import DIALECTS, Dialect
from prediction_log.location import LocationError, LogLocation, resolve, sqlite_in
from prediction_log.schema import ARMS_VERSION

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class LogProblem(Exception):
    """The log cannot answer the question (missing, unreadable, nothing in the window)."""


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
    mark = DIALECTS[location.kind].mark
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


def _as_location(log: LogLocation | Path | str) -> LogLocation:
    return log if isinstance(log, LogLocation) else sqlite_in(log)


def as_utc(value: Any) -> datetime:
    """A logged time as an aware UTC datetime (SQLite holds ISO text, PostgreSQL returns its session's zone)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


class Window:
    """One task's rows logged at or after `since` (ISO UTC; None: all), asked of the store through one read-only
    connection. Shadow rows (the challenger's, logged but not answered) are not traffic: `answered` leaves them
    out, and counting them would double every shadowed request."""

    def __init__(self, connection: Any, location: LogLocation, task: str, since: str | None) -> None:
        self.connection = connection
        self.location = location
        self.task = task
        self.since = since
        self.dialect: Dialect = DIALECTS[location.kind]
        self.version = _schema_version(connection)
        self.executed: list[tuple[str, tuple]] = []  # every query run, with its arguments

    @property
    def has_arms(self) -> bool:
        return self.version >= ARMS_VERSION

    def where(self, table: str = "predictions", answered: bool = True, first_rows: bool = False) -> tuple[str, tuple]:
        """`FROM table WHERE ...` of the window, and its arguments. `first_rows`: one row per answered request
        (its first record; a batch's records share the request's latency)."""
        where, args = _where(self.location, self.task, self.since,
                             answered=table == "predictions" and answered and self.has_arms)
        if first_rows:
            condition, more = self.first_row()
            where, args = f"{where} AND {condition}", args + more
        return f"FROM {table}{where}", args

    def first_row(self) -> tuple[str, tuple]:
        """A condition on a prediction row (and its arguments): the row is its request's first record, the one
        that stands for the request (a batch's records share the request's latency)."""
        if self.has_arms:
            return "position = 0", ()
        where, args = _where(self.location, self.task, self.since)  # a log from before positions: the first row
        return f"id IN (SELECT MIN(id) FROM predictions{where} GROUP BY request_id)", args  # under each request id

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        self.executed.append((sql, args))
        return self.connection.execute(sql, args).fetchall()

    def stream(self, sql: str, args: tuple, size: int) -> Iterator[list[tuple]]:
        """A large result in batches of `size` rows, never whole (PostgreSQL: a server-side cursor; a client-side
        one would receive every row at once)."""
        self.executed.append((sql, args))
        if self.location.kind == "postgresql":
            with self.connection.transaction(), self.connection.cursor(name="window_rows") as cursor:
                cursor.execute(sql, args)
                while batch := cursor.fetchmany(size):
                    yield batch
            return
        cursor = self.connection.execute(sql, args)
        while batch := cursor.fetchmany(size):
            yield batch

    def newest_model(self) -> str | None:
        """The model tag of the newest answered prediction in the window."""
        source, args = self.where()
        found = self.rows(f"SELECT model {source} ORDER BY ts DESC, id DESC LIMIT 1", args)
        return found[0][0] if found else None


@contextlib.contextmanager
def open_window(log: LogLocation | Path | str, task: str, since: str | None) -> Iterator[Window]:
    """A `Window` of `task` over a read-only connection, closed afterwards. Raises LogProblem."""
    location = _as_location(log)
    with _reader(location) as connection:
        yield Window(connection, location, task, since)


def logged_tasks(log: LogLocation | Path | str, since: str | None) -> list[str]:
    """The declared tasks with at least one prediction or rejected request in the window (one index probe each)."""
    location = _as_location(log)
    found = []
    with _reader(location) as connection:
        for task in sorted(task_names()):
            where, args = _where(location, task, since)
            if connection.execute(f"SELECT EXISTS (SELECT 1 FROM predictions{where}) "
                                  f"OR EXISTS (SELECT 1 FROM request_errors{where})", args + args).fetchone()[0]:
                found.append(task)
    return found
