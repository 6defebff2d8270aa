"""The prediction log's writer: every prediction committed to SQLite and appended to a JSON-lines file.

Durability: a request is answered only after its rows are committed to SQLite, so a prediction
whose response was sent survives a SIGKILL of the server right after (WAL mode; the commit has
reached the operating system). Throughput: one writer thread per worker commits everything
that queued up while the previous commit ran (group commit) and then acknowledges the whole
group with one wake-up of the event loop (not one per request). Each row is JSON-encoded once
and the encoding is shared by the SQLite row and the JSON line. Several workers may share the
same files: SQLite serialises writers, and a group's lines are appended under an flock.

A group is in both files or in neither: its lines are appended, then its rows committed, and a
failure of either undoes the lines (prediction_log/files.py). Waiting requests then get
LogUnavailable and the service answers 503 rather than serving an unlogged prediction; the error
is logged as SQLite or the OS reported it, and `healthy` turns false until a commit (or, with no
traffic, a test write in the directory) succeeds again. A file deleted or replaced under the
server is noticed before and after every commit and every second when idle, and reopened; a group
committed to a file that was deleted meanwhile is committed again to the new one before it is
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from prediction_log.files import Database, JsonlFile
from prediction_log.store import (
    DB_NAME,
    JSONL_NAME,
    ErrorRow,
    PredictionRow,
    encode_errors,
    encode_predictions,
    utc_now,
)

logger = logging.getLogger(__name__)
MAX_GROUP = 2048  # rows per commit at most
IDLE_CHECK_S = 1.0  # with no traffic, look at the files this often
REOPEN_WAIT_S = 10.0  # how long a reopen waits for the other workers to close a deleted database
PROBE_BYTES = 64 * 1024  # the test write that tells an idle, unhealthy log that the disk has room again

# (file, reason): file is "database" or "jsonl", reason "deleted" or "replaced"
ReopenListener = Callable[[str, str], None]
HealthListener = Callable[[bool], None]


class LogUnavailable(RuntimeError):
    """The prediction log could not be written."""


class PredictionLog:
    """Group-committing writer for one worker process. Call `start()` once, `close()` at shutdown.

    `on_reopen(file, reason)` is told when a deleted or replaced file was reopened, `on_health(healthy)`
    when the log stops or starts being writable; both are called from the writer thread."""

    def __init__(self, directory: Path, on_reopen: ReopenListener | None = None,
                 on_health: HealthListener | None = None) -> None:
        self.directory = Path(directory)
        self.db_path = self.directory / DB_NAME
        self.jsonl_path = self.directory / JSONL_NAME
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._db = Database(self.db_path)
        self._jsonl = JsonlFile(self.jsonl_path)
        self._on_reopen = on_reopen
        self._on_health = on_health
        self._healthy = True
        self._suspect = False  # the last commit failed: reconnect and reopen before the next one

    def start(self) -> None:
        """Open (creating if needed) the database and the file; raises LogUnavailable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db.open()
            self._jsonl.open()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise LogUnavailable(f"cannot open the prediction log in {self.directory}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        """Whether the last commit (or test write) succeeded."""
        return self._healthy

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
        self._db.close()
        self._jsonl.close()

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=IDLE_CHECK_S)
            except queue.Empty:
                self._idle_check()
                continue
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
            lines = prediction_lines + error_lines
            self._prepare()
            with self._jsonl.appending(lines):
                self._insert(prediction_values, error_values)
            self._recommit_if_moved(prediction_values, error_values, lines)
        except (OSError, sqlite3.Error, TypeError, ValueError, LogUnavailable) as exc:
            failure = LogUnavailable(f"prediction log write failed: {type(exc).__name__}: {exc}")
            logger.error("prediction log: %d rows not logged (their requests get 503): %s: %s",
                         len(predictions) + len(errors), type(exc).__name__, exc)
            self._suspect = True
            self._set_healthy(False)
        else:
            self._suspect = False
            self._set_healthy(True)
        _acknowledge(group, failure)

    def _insert(self, predictions: list[tuple], errors: list[tuple], commit: bool = True) -> None:
        with self._db.transaction(commit) as connection:
            if predictions:
                connection.executemany(
                    "INSERT INTO predictions (ts, request_id, task, model, inputs, prediction, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", predictions)
            if errors:
                connection.executemany(
                    "INSERT INTO request_errors (ts, request_id, task, status, error, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)", errors)

    def _prepare(self) -> None:
        """Before a commit: reopen what was deleted or replaced; after a failure, fresh descriptors."""
        self._reopen_moved()
        if self._suspect:
            self._jsonl.open()
            self._db.reconnect()
        if self._db.connection is None:
            raise LogUnavailable(f"{self.db_path} is being reopened: other workers still hold the old file")

    def _reopen_moved(self) -> tuple[bool, bool]:
        """Reopen each file the path no longer names; returns which were (database, jsonl)."""
        db_reason, jsonl_reason = self._db.moved(), self._jsonl.moved()
        if db_reason is None and self._db.reopen_pending:
            db_reason = "deleted"  # a reopen that could not finish yet
        if db_reason is not None:
            if not self._db.reopen(REOPEN_WAIT_S):
                raise LogUnavailable(f"{self.db_path} was {db_reason}; other workers still hold the old file")
            self._reopened("database", db_reason)
        if jsonl_reason is not None:
            self._jsonl.open()
            self._reopened("jsonl", jsonl_reason)
        return db_reason is not None, jsonl_reason is not None

    def _recommit_if_moved(self, predictions: list[tuple], errors: list[tuple], lines: list[str]) -> None:
        """A file deleted while the group was being written took the group with it: write it again."""
        db_moved, jsonl_moved = self._reopen_moved()
        if jsonl_moved:
            with self._jsonl.appending(lines):
                pass
        if db_moved:
            self._insert(predictions, errors)

    def _reopened(self, file: str, reason: str) -> None:
        path = self.db_path if file == "database" else self.jsonl_path
        logger.warning("prediction log: %s was %s under the server; reopened it (rows committed to the old file "
                       "since it was %s are not in the new one)", path, reason, reason)
        if self._on_reopen is not None:
            self._on_reopen(file, reason)

    def _idle_check(self) -> None:
        """No traffic: notice deleted files now, and find out whether an unhealthy log can be written again."""
        try:
            self._reopen_moved()
            if not self._healthy:
                self._probe()
                self._prepare()
                self._insert(*_PROBE_ROWS, commit=False)  # the tables still take rows
                self._suspect = False
                self._set_healthy(True)
        except (OSError, sqlite3.Error, LogUnavailable) as exc:
            logger.debug("prediction log still unavailable: %s", exc)

    def _probe(self) -> None:
        probe = self.directory / f".write-probe-{os.getpid()}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * PROBE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)

    def _set_healthy(self, healthy: bool) -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            logger.warning("prediction log: %s is writable again", self.directory)
        if self._on_health is not None:
            self._on_health(healthy)


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


# A row of each table, inserted and rolled back by the idle check of an unhealthy log.
_PROBE_ROWS = ([("", "", "", "", "{}", "null", 0.0)], [("", "", "", 0, "{}", 0.0)])

# One log per worker process, shared by the service and the request guard.
_PROCESS_LOG: PredictionLog | None = None


def open_process_log(directory: Path, on_reopen: ReopenListener | None = None,
                     on_health: HealthListener | None = None) -> PredictionLog:
    """Start this process's log (idempotent); raises LogUnavailable if it cannot be opened."""
    global _PROCESS_LOG
    if _PROCESS_LOG is None or not _PROCESS_LOG.running:
        log = PredictionLog(directory, on_reopen, on_health)
        log.start()
        _PROCESS_LOG = log
    return _PROCESS_LOG


def process_log() -> PredictionLog | None:
    return _PROCESS_LOG if _PROCESS_LOG is not None and _PROCESS_LOG.running else None
