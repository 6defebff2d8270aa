"""The prediction log: every prediction in SQLite (table `predictions`) and in a JSON-lines file.

Durability: a request is answered only after its rows are committed to SQLite, so a prediction
whose response was sent survives a SIGKILL of the server right after (WAL mode; the commit has
reached the operating system). Throughput: one writer thread per worker commits everything
that queued up while the previous commit ran (group commit) and then acknowledges each waiting
request. Several workers may share the same files: SQLite serialises writers, and JSON lines
are appended with one O_APPEND write per group.

If the log cannot be written, waiting requests get LogUnavailable and the service answers 503
rather than serving an unlogged prediction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DB_NAME = "predictions.db"
JSONL_NAME = "predictions.jsonl"
MAX_GROUP = 2048  # rows per commit at most

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


class LogUnavailable(RuntimeError):
    """The prediction log could not be written."""


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


class PredictionLog:
    """Group-committing writer for one worker process. Call `start()` once, `close()` at shutdown."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.db_path = self.directory / DB_NAME
        self.jsonl_path = self.directory / JSONL_NAME
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._jsonl_fd: int | None = None

    def start(self) -> None:
        """Open (creating if needed) the database and the file; raises LogUnavailable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._connection = connect(self.db_path)
            self._connection.executescript(SCHEMA)
            self._jsonl_fd = os.open(self.jsonl_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise LogUnavailable(f"cannot open the prediction log in {self.directory}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def write(self, rows: list[PredictionRow | ErrorRow]) -> None:
        """Queue rows and wait until they are committed. Raises LogUnavailable."""
        if not self.running:
            raise LogUnavailable("the prediction log is not open")
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((rows, done))
        await asyncio.wrap_future(done)

    def close(self) -> None:
        """Commit what is queued, then close the files."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._jsonl_fd is not None:
            os.close(self._jsonl_fd)
            self._jsonl_fd = None

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            group = [item]
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._commit(group)
        # drain anything left so no waiter hangs
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._commit([item])

    def _commit(self, group: list[tuple[list, concurrent.futures.Future]]) -> None:
        now = utc_now()
        predictions, errors = [], []
        for rows, _ in group:
            for row in rows:
                (predictions if isinstance(row, PredictionRow) else errors).append(row)
        try:
            self._write_sqlite(predictions, errors, now)
            self._write_jsonl(predictions, errors, now)
        except (OSError, sqlite3.Error, TypeError, ValueError) as exc:
            failure = LogUnavailable(f"prediction log write failed: {exc}")
            for _, done in group:
                done.set_exception(failure)
            return
        for _, done in group:
            done.set_result(None)

    def _write_sqlite(self, predictions: list[PredictionRow], errors: list[ErrorRow], now: str) -> None:
        connection = self._connection
        assert connection is not None
        connection.execute("BEGIN IMMEDIATE")
        try:
            if predictions:
                connection.executemany(
                    "INSERT INTO predictions (ts, request_id, task, model, inputs, prediction, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.ts or now, r.request_id, r.task, r.model, json.dumps(r.inputs), json.dumps(r.prediction),
                      r.latency_ms) for r in predictions],
                )
            if errors:
                connection.executemany(
                    "INSERT INTO request_errors (ts, request_id, task, status, error, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(r.ts or now, r.request_id, r.task, r.status, json.dumps(r.error), r.latency_ms) for r in errors],
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _write_jsonl(self, predictions: list[PredictionRow], errors: list[ErrorRow], now: str) -> None:
        lines = [json.dumps({"ts": r.ts or now, "request_id": r.request_id, "task": r.task, "model": r.model,
                             "inputs": r.inputs, "prediction": r.prediction, "latency_ms": r.latency_ms})
                 for r in predictions]
        lines += [json.dumps({"ts": r.ts or now, "request_id": r.request_id, "task": r.task, "status": r.status,
                              "error": r.error, "latency_ms": r.latency_ms}) for r in errors]
        if lines:
            os.write(self._jsonl_fd, ("\n".join(lines) + "\n").encode())


# One log per worker process, shared by the service and the request guard.
_PROCESS_LOG: PredictionLog | None = None


def open_process_log(directory: Path) -> PredictionLog:
    """Start this process's log (idempotent); raises LogUnavailable if it cannot be opened."""
    global _PROCESS_LOG
    if _PROCESS_LOG is None or not _PROCESS_LOG.running:
        log = PredictionLog(directory)
        log.start()
        _PROCESS_LOG = log
    return _PROCESS_LOG


def process_log() -> PredictionLog | None:
    return _PROCESS_LOG if _PROCESS_LOG is not None and _PROCESS_LOG.running else None
