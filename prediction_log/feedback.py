"""Ground truth for logged predictions (POST /<task>/feedback): one true value per (task, request_id, position).

The service calls `FeedbackStore.record` with a request's items once it has validated each `actual`. All items of
one call go in one transaction: an item whose prediction was never logged (wrong task, id or position) is
"unknown" and stored nowhere; one that already has feedback, from an earlier call or earlier in the same call, is
a "duplicate" and keeps the first value (a client retrying a call must not change what was measured). Each result
carries the logged rows of its record (the answered one and, in shadow mode, the challenger's shadow row), so the
service can answer with the errors of both arms. A request id a client reused (its own X-Request-ID) names the
newest prediction of each arm logged under it, here and in the monitor's join. The lookups read `predictions`
only: an explanation is not a prediction that a client acted on.

SQLite: the database file the service's writers use (WAL, a long busy timeout), opened for each call and closed
after it, with the writers' pin (prediction_log/files.py) held only meanwhile: an idle feedback store must never
keep a deleted file pinned, or the writers' reopen would wait for it. It never creates the database: a missing
file (deleted, and no writer has reopened it yet) is a 503, never a new file beside the old one's -wal. Stored
feedback also goes to the JSON-lines mirror, as lines with `"kind": "feedback"`, because the mirror is meant to
hold every row the database holds; as for a writer's group, the lines are appended under the mirror's flock before
the database's write lock is taken (the order every writer uses, so no two wait on each other), and cut back if the
commit fails.
PostgreSQL: its own connection, reconnected when it broke (as prediction_log/postgres_store.py does); no mirror.

Any failure of the store raises FeedbackUnavailable, a LogUnavailable: the service answers 503.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from prediction_log.files import Database, JsonlFile
from prediction_log.location import LogLocation
from prediction_log.store import ARMS, utc_now
from prediction_log.writer import LogUnavailable

STATUSES = ("stored", "unknown", "duplicate")
LOOKUP = ("SELECT model, arm, prediction FROM predictions WHERE task = {m} AND request_id = {m} AND position = {m} "
          "ORDER BY id DESC")  # newest first: a request id a client reused names its newest prediction per arm
INSERT = ("INSERT INTO feedback (ts, task, request_id, position, actual) VALUES ({m}, {m}, {m}, {m}, {actual}) "
          "ON CONFLICT (task, request_id, position) DO NOTHING")


class FeedbackUnavailable(LogUnavailable):
    """Feedback could not be read or written (the service answers 503)."""


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    position: int
    actual: object


@dataclass(frozen=True)
class LoggedPrediction:
    model: str
    arm: str
    prediction: object  # as logged, JSON-decoded


@dataclass(frozen=True)
class FeedbackResult:
    status: str  # "stored" | "unknown" | "duplicate"
    predictions: tuple[LoggedPrediction, ...]  # the logged rows of the record; empty when unknown


def _record_items(execute: Any, lookup: str, insert: str, task: str, items: list[FeedbackItem],
                  ts: str) -> list[tuple[FeedbackResult, bool]]:
    """Each item's result and whether it was inserted, inside the caller's transaction: the same statements on
    either store (`execute(sql, params)` returns a cursor; only the placeholders differ)."""
    out = []
    for item in items:
        newest: dict[str, tuple[str, Any]] = {}
        for model, arm, value in execute(lookup, (task, item.request_id, item.position)).fetchall():
            newest.setdefault(arm, (model, value))
        inserted = bool(newest) and execute(
            insert, (ts, task, item.request_id, item.position, json.dumps(item.actual))).rowcount == 1
        predictions = tuple(LoggedPrediction(model, arm, json.loads(value) if isinstance(value, str) else value)
                            for arm, (model, value) in sorted(newest.items(), key=lambda pair: ARMS.index(pair[0])))
        status = "unknown" if not predictions else "stored" if inserted else "duplicate"
        out.append((FeedbackResult(status, predictions), inserted))
    return out


def _line(ts: str, task: str, item: FeedbackItem) -> str:
    return json.dumps({"ts": ts, "kind": "feedback", "task": task, "request_id": item.request_id,
                       "position": item.position, "actual": item.actual})


class _SQLiteFeedback:
    errors = (sqlite3.Error, OSError)

    def __init__(self, location: LogLocation) -> None:
        assert location.path is not None and location.jsonl_path is not None
        self.location = location
        self._lookup = LOOKUP.format(m="?")
        self._insert = INSERT.format(m="?", actual="?")

    def open(self) -> None:
        """Check the log can be opened now (a server's start-up check); each call opens it again."""
        self._with_log(lambda db, jsonl: None)

    def record(self, task: str, items: list[FeedbackItem], ts: str) -> list[FeedbackResult]:
        return self._with_log(lambda db, jsonl: self._record(db, jsonl, task, items, ts))

    def _with_log(self, work: Any) -> Any:
        assert self.location.path is not None and self.location.jsonl_path is not None
        if not self.location.path.is_file():
            raise sqlite3.OperationalError(f"{self.location.path} does not exist (deleted? the writers recreate it)")
        db, jsonl = Database(self.location.path), JsonlFile(self.location.jsonl_path)
        try:
            db.open()
            jsonl.open()
            return work(db, jsonl)
        finally:
            db.close()
            jsonl.close()

    def _record(self, db: Database, jsonl: JsonlFile, task: str, items: list[FeedbackItem],
                ts: str) -> list[FeedbackResult]:
        assert db.connection is not None
        with jsonl.appending([]) as append, db.transaction() as connection:  # the mirror's flock first
            outcomes = _record_items(connection.execute, self._lookup, self._insert, task, items, ts)
            append([_line(ts, task, item) for item, (_, inserted) in zip(items, outcomes, strict=True) if inserted])
        return [result for result, _ in outcomes]

    def close(self) -> None:
        """Nothing stays open between calls."""


class _PostgresFeedback:
    def __init__(self, location: LogLocation) -> None:
        import psycopg

        self.errors = (psycopg.Error, OSError)
        self.location = location
        self._connection: Any = None
        self._lookup = LOOKUP.format(m="%s")
        self._insert = INSERT.format(m="%s", actual="%s::jsonb")

    def open(self) -> None:
        from prediction_log.postgres_store import connect
        from prediction_log.schema import migrate_postgresql

        self.close()
        self._connection = connect(self.location)
        migrate_postgresql(self._connection)

    def record(self, task: str, items: list[FeedbackItem], ts: str) -> list[FeedbackResult]:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self.open()
        connection = self._connection
        try:
            with connection.transaction():
                outcomes = _record_items(connection.execute, self._lookup, self._insert, task, items, ts)
        except BaseException:
            if connection.closed or connection.broken:
                self.close()
            else:
                connection.rollback()
            raise
        return [result for result, _ in outcomes]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class FeedbackStore:
    """One process's handle for feedback, on the log's store. Thread-safe: calls are serialised by a lock (each
    is one short transaction). Connects on first use; `open_feedback_store` connects at once."""

    def __init__(self, location: LogLocation) -> None:
        self.location = location
        self._backend: Any = _PostgresFeedback(location) if location.kind == "postgresql" else _SQLiteFeedback(location)
        self._lock = threading.Lock()
        self._opened = False

    def open(self) -> None:
        """Connect and bring the tables to the current schema version; raises FeedbackUnavailable."""
        with self._lock:
            self._open()

    def record(self, task: str, items: list[FeedbackItem], ts: str | None = None) -> list[FeedbackResult]:
        """Store each item's true value in one transaction; one result per item, in order (module docstring).
        Blocking: call it from a thread, not the event loop. Raises FeedbackUnavailable."""
        ts = ts or utc_now()
        with self._lock:
            self._open()
            try:
                return self._backend.record(task, items, ts)
            except (*self._backend.errors, RuntimeError) as exc:
                raise FeedbackUnavailable(
                    f"feedback not stored in {self.location}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(*self._backend.errors):
                self._backend.close()
            self._opened = False

    def _open(self) -> None:
        if self._opened:
            return
        try:
            self._backend.open()
        except (*self._backend.errors, RuntimeError) as exc:
            raise FeedbackUnavailable(
                f"cannot open the prediction log {self.location} for feedback: {type(exc).__name__}: {exc}") from exc
        self._opened = True


def open_feedback_store(location: LogLocation) -> FeedbackStore:
    """A FeedbackStore, connected and migrated; raises FeedbackUnavailable."""
    store = FeedbackStore(location)
    store.open()
    return store
