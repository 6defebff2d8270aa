"""The prediction log's writer: one thread per worker that group-commits every row before its request is answered.

Durability: a request is answered only after its rows are committed to the store (SQLite, or PostgreSQL
for many replicas: prediction_log/location.py), so a prediction whose response was sent survives a
SIGKILL of the server right after. Throughput: the writer commits everything that queued up while the
previous commit ran (group commit) and then acknowledges the whole group with one wake-up of the event
loop (not one per request). Each row is encoded once for the store and the JSON-lines mirror.

If the store cannot be written, waiting requests get LogUnavailable and the service answers 503 rather
than serving an unlogged prediction; the error is logged as the store reported it, and `healthy` turns
false until a write (or, with no traffic, the store's probe) succeeds again. With no traffic the writer
also looks at the store every second (deleted files, a lost connection), and prunes rows older than the
retention, in bounded batches between groups, so writers never wait long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prediction_log.batches import BatchSize
from prediction_log.location import LogLocation, sqlite_in
from prediction_log.store import (
    ErrorRow,
    ExplanationRow,
    PredictionRow,
    encode_errors,
    encode_explanations,
    encode_predictions,
    utc_now,
)

logger = logging.getLogger(__name__)
MAX_GROUP = 2048  # rows per commit at most
IDLE_CHECK_S = 1.0  # with no traffic, look at the store this often
PRUNE_EVERY_S = 600.0  # how often retention looks for old rows
PRUNE_BATCH = 5000  # rows deleted per table and statement at most (prediction_log/batches.py sizes each batch)

# (file, reason): file is "database" or "jsonl", reason "deleted" or "replaced"
ReopenListener = Callable[[str, str], None]
HealthListener = Callable[[bool], None]


class LogUnavailable(RuntimeError):
    """The prediction log could not be written."""


LaterFailure = Callable[[LogUnavailable], None]  # told why rows queued with `write_later` were not written


def open_store(location: LogLocation, on_reopen: ReopenListener | None = None, **options: Any) -> Any:
    """The store for a location (PostgreSQL's driver is imported only when it is used)."""
    if location.kind == "postgresql":
        from prediction_log.postgres_store import PostgresStore

        return PostgresStore(location, on_reopen, **options)
    from prediction_log.sqlite_store import SQLiteStore

    return SQLiteStore(location, on_reopen, **options)


class PredictionLog:
    """Group-committing writer for one worker process. Call `start()` once, `close()` at shutdown.

    `location` is a LogLocation (or a directory, for SQLite). `on_reopen(file, reason)` is told when a deleted
    or replaced file was reopened, `on_health(healthy)` when the log stops or starts being writable; both are
    called from the writer thread. `retention_days` > 0 deletes rows older than that."""

    def __init__(self, location: LogLocation | Path | str, on_reopen: ReopenListener | None = None,
                 on_health: HealthListener | None = None, retention_days: float = 0, **store_options: Any) -> None:
        self.location = location if isinstance(location, LogLocation) else sqlite_in(location)
        self.store = open_store(self.location, on_reopen, **store_options)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._on_health = on_health
        self._healthy = True
        self._retention_days = retention_days
        self._next_prune = time.monotonic()
        self._pruning = False  # old rows are left to delete: one batch after each group
        # sized to the store's budget (SQLite: a few milliseconds: the group after it waits for the lock)
        self._prune_batch = BatchSize(PRUNE_BATCH, self.store.PRUNE_BUDGET_S)
        self._later: list[tuple[list, LaterFailure | None]] = []  # rows nobody waits for (write_later)
        self._later_lock = threading.Lock()

    @property
    def db_path(self) -> Path | None:
        return self.location.path

    @property
    def jsonl_path(self) -> Path | None:
        return self.location.jsonl_path

    def start(self) -> None:
        """Open (creating and migrating if needed) the store; raises LogUnavailable."""
        try:
            self.store.open()
        except (*self.store.errors, RuntimeError) as exc:
            self.close()
            raise LogUnavailable(
                f"cannot open the prediction log {self.location}: {type(exc).__name__}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        """Whether the last write (or probe) succeeded."""
        return self._healthy

    async def write(self, rows: list[PredictionRow | ExplanationRow | ErrorRow]) -> None:
        """Queue rows and wait until they are committed. Raises LogUnavailable."""
        if not self.running:
            raise LogUnavailable("the prediction log is not open")
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((rows, loop, done))
        await done

    def write_later(self, rows: list[PredictionRow], on_failure: LaterFailure | None = None) -> None:
        """Queue rows nobody waits for (a shadowing challenger's predictions) without waking the writer: they
        are committed with the next group of answered rows, or within IDLE_CHECK_S when no traffic comes, so
        they cost no commit of their own. `on_failure(error)` is called from the writer thread if they could not
        be written. Raises LogUnavailable when the log is not open."""
        if not self.running:
            raise LogUnavailable("the prediction log is not open")
        with self._later_lock:
            self._later.append((rows, on_failure))

    def close(self) -> None:
        """Commit what is queued (and what waits for a later group), then close the store."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._thread = None
        with contextlib.suppress(*self.store.errors):
            self.store.close()

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=0 if self._pruning else IDLE_CHECK_S)
            except queue.Empty:
                if self._later:
                    self._commit([])
                self._idle_check()
                self._retain()
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
            self._retain()
        # drain anything left so no waiter hangs and nothing queued for later is lost
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._commit([item])
        if self._later:
            self._commit([])

    def _commit(self, group: list[tuple[list, asyncio.AbstractEventLoop, asyncio.Future]]) -> None:
        now = utc_now()
        with self._later_lock:
            later, self._later = self._later, []
        predictions, explanations, errors = [], [], []
        for rows in [rows for rows, _ in later] + [rows for rows, _, _ in group]:
            for row in rows:
                (explanations if isinstance(row, ExplanationRow)  # a PredictionRow too: ask first
                 else predictions if isinstance(row, PredictionRow) else errors).append(row)
        failure = None
        try:
            prediction_values, prediction_lines = encode_predictions(predictions, now)
            explanation_values, explanation_lines = encode_explanations(explanations, now)
            error_values, error_lines = encode_errors(errors, now)
            self.store.write(prediction_values, error_values, prediction_lines + explanation_lines + error_lines,
                             explanation_values)
        except (*self.store.errors, TypeError, ValueError) as exc:
            failure = LogUnavailable(f"prediction log write failed: {type(exc).__name__}: {exc}")
            logger.error("prediction log: %d rows not logged (their requests get 503): %s: %s",
                         len(predictions) + len(explanations) + len(errors), type(exc).__name__, exc)
            self._set_healthy(False)
        else:
            self._set_healthy(True)
        _acknowledge(group, failure)
        if failure is not None:
            for _, on_failure in later:
                if on_failure is not None:
                    on_failure(failure)

    def _idle_check(self) -> None:
        """No traffic: notice moved files or a lost server now, and whether an unhealthy log works again; an idle
        worker's readiness then says what its next request would get."""
        try:
            self.store.check()
            if not self._healthy:
                self.store.probe()
                self._set_healthy(True)
        except self.store.errors as exc:
            if self._healthy:
                logger.error("prediction log: %s is unavailable: %s: %s", self.location, type(exc).__name__, exc)
            else:
                logger.debug("prediction log still unavailable: %s", exc)
            self._set_healthy(False)

    def _retain(self) -> None:
        """Delete one batch of rows older than the retention, when it is time (then after every group)."""
        if self._retention_days <= 0 or not self._healthy:
            return
        if not self._pruning and time.monotonic() < self._next_prune:
            return
        before = (datetime.now(UTC) - timedelta(days=self._retention_days)).isoformat(timespec="microseconds")
        try:
            started = time.perf_counter()
            deleted = self.store.prune(before, self._prune_batch.rows)
            self._prune_batch.took(time.perf_counter() - started)
        except self.store.errors as exc:
            logger.warning("prediction log: retention could not delete old rows: %s", exc)
            deleted = 0
        self._pruning = deleted > 0
        if not self._pruning:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            with contextlib.suppress(*self.store.errors):
                self.store.checkpoint()

    def _set_healthy(self, healthy: bool) -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            logger.warning("prediction log: %s is writable again", self.location)
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


# One log per worker process, shared by the service and the request guard.
_PROCESS_LOG: PredictionLog | None = None


def open_process_log(location: LogLocation | Path, on_reopen: ReopenListener | None = None,
                     on_health: HealthListener | None = None, **options: Any) -> PredictionLog:
    """Start this process's log (idempotent); raises LogUnavailable if it cannot be opened."""
    global _PROCESS_LOG
    if _PROCESS_LOG is None or not _PROCESS_LOG.running:
        log = PredictionLog(location, on_reopen, on_health, **options)
        log.start()
        _PROCESS_LOG = log
    return _PROCESS_LOG


def process_log() -> PredictionLog | None:
    return _PROCESS_LOG if _PROCESS_LOG is not None and _PROCESS_LOG.running else None
