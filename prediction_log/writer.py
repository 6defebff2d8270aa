"""The prediction log's writer: every prediction committed to SQLite and appended to a JSON-lines file.

Durability: a request is answered only after its rows are committed to SQLite, so a prediction
whose response was sent survives a SIGKILL of the server right after (WAL mode; the commit has
reached the operating system). Throughput: one writer thread per worker commits everything
that queued up while the previous commit ran (group commit) and then acknowledges the whole
group with one wake-up of the event loop (not one per request). Each row is JSON-encoded once
and the encoding is shared by the SQLite row and the JSON line. Several workers may share the
same files: SQLite serialises writers, and JSON lines are appended with one O_APPEND write per group.

If the log cannot be written, waiting requests get LogUnavailable and the service answers 503
rather than serving an unlogged prediction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from pathlib import Path

from prediction_log.store import (
    DB_NAME,
    JSONL_NAME,
    SCHEMA,
    ErrorRow,
    PredictionRow,
    connect,
    encode_errors,
    encode_predictions,
    utc_now,
)

MAX_GROUP = 2048  # rows per commit at most


class LogUnavailable(RuntimeError):
    """The prediction log could not be written."""


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
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((rows, loop, done))
        await done

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

    def _commit(self, group: list[tuple[list, asyncio.AbstractEventLoop, asyncio.Future]]) -> None:
        now = utc_now()
        predictions, errors = [], []
        for rows, _, _ in group:
            for row in rows:
                (predictions if isinstance(row, PredictionRow) else errors).append(row)
        failure = None
        try:
            prediction_values, prediction_lines = encode_predictions(predictions, now)
            error_values, error_lines = encode_errors(errors, now)
            self._write_sqlite(prediction_values, error_values)
            self._write_jsonl(prediction_lines + error_lines)
        except (OSError, sqlite3.Error, TypeError, ValueError) as exc:
            failure = LogUnavailable(f"prediction log write failed: {exc}")
        _acknowledge(group, failure)

    def _write_sqlite(self, predictions: list[tuple], errors: list[tuple]) -> None:
        connection = self._connection
        assert connection is not None
        connection.execute("BEGIN IMMEDIATE")
        try:
            if predictions:
                connection.executemany(
                    "INSERT INTO predictions (ts, request_id, task, model, inputs, prediction, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", predictions)
            if errors:
                connection.executemany(
                    "INSERT INTO request_errors (ts, request_id, task, status, error, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)", errors)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _write_jsonl(self, lines: list[str]) -> None:
        if lines:
            os.write(self._jsonl_fd, ("\n".join(lines) + "\n").encode())


def _acknowledge(group: list[tuple[list, asyncio.AbstractEventLoop, asyncio.Future]],
                 failure: LogUnavailable | None) -> None:
    """Wake every waiting request of the group: one call into each event loop, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for _, loop, done in group:
        by_loop.setdefault(loop, []).append(done)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, futures, failure)


def _settle(futures: list[asyncio.Future], failure: LogUnavailable | None) -> None:
    for done in futures:
        if done.done():  # the request was cancelled (timeout) while it waited
            continue
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)


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
