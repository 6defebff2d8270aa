"""The SQLite store: predictions.db (WAL) and its JSON-lines mirror, shared by every worker of one server.

A group is in both files or in neither: its lines are appended, then its rows committed, and a failure of
either undoes the lines (prediction_log/files.py). A file deleted or replaced under the server is noticed
before and after every commit and at every idle check, and reopened; a group committed to a file that was
deleted meanwhile is committed again to the new one before it is acknowledged. The mirror is rotated by size
(`jsonl_max_bytes`, keeping `jsonl_backups` old files): the other workers notice the rename and follow.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from prediction_log.batches import BUDGET_S, DUTY
from prediction_log.files import Database, JsonlFile
from prediction_log.location import LogLocation
from prediction_log.schema import ERROR_COLUMNS, EXPLANATION_COLUMNS, PREDICTION_COLUMNS, TABLES

logger = logging.getLogger("prediction_log")
REOPEN_WAIT_S = 10.0  # how long a reopen waits for the other workers to close a deleted database
PROBE_BYTES = 64 * 1024  # the test write that tells an unhealthy log that the disk has room again
JOURNAL_SIZE_LIMIT = 64 << 20  # bytes of WAL kept after a checkpoint (SQLite truncates the rest)
ERRORS = (OSError, sqlite3.Error)

INSERT_PREDICTIONS = (f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
                      f"VALUES ({', '.join('?' * len(PREDICTION_COLUMNS))})")
INSERT_EXPLANATIONS = (f"INSERT INTO explanations ({', '.join(EXPLANATION_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(EXPLANATION_COLUMNS))})")
INSERT_ERRORS = (f"INSERT INTO request_errors ({', '.join(ERROR_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(ERROR_COLUMNS))})")
# A row of each table, inserted and rolled back by the probe of an unhealthy log: the tables still take rows.
PROBE_ROWS = ([("", "", "", "", "{}", "null", 0.0, "champion", 0, 0)], [("", "", "", 0, "{}", 0.0)])


class SQLiteStore:
    """One worker's handle on the SQLite log. Errors are raised as OSError or sqlite3.Error."""

    errors = ERRORS
    # a delete holds the write lock every worker needs: small batches, the lock left alone 9/10 of the time
    PRUNE_BUDGET_S: float | None = BUDGET_S
    PRUNE_DUTY = DUTY

    def __init__(self, location: LogLocation, on_reopen=None, jsonl_max_bytes: int = 0,
                 jsonl_backups: int = 3) -> None:
        assert location.path is not None and location.jsonl_path is not None
        self.location = location
        self.db_path = location.path
        self.jsonl_path = location.jsonl_path
        self._db = Database(self.db_path)
        self._jsonl = JsonlFile(self.jsonl_path)
        self._on_reopen = on_reopen
        self._jsonl_max_bytes = jsonl_max_bytes
        self._jsonl_backups = jsonl_backups
        self._suspect = False  # the last write failed: fresh descriptors before the next one

    def open(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db.open()
        self._db.connection.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        self._jsonl.open()

    def close(self) -> None:
        self._db.close()
        self._jsonl.close()

    def write(self, predictions: list[tuple], errors: list[tuple], lines: list[str],
              explanations: list[tuple] = ()) -> None:
        """Commit a group's rows and append its lines, all or nothing."""
        self._prepare()
        try:
            with self._jsonl.appending(lines):
                self._insert(predictions, errors, explanations=explanations)
            self._recommit_if_moved(predictions, errors, lines, explanations)
            self._rotate_if_large()
        except BaseException:
            self._suspect = True
            raise
        self._suspect = False

    def check(self) -> None:
        """Idle: notice deleted or replaced files now rather than at the next request."""
        self._reopen_moved()

    def probe(self) -> None:
        """Raise unless the log can be written again: room on the disk, a connection, tables that take rows."""
        probe = self.db_path.parent / f".write-probe-{os.getpid()}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * PROBE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)
        self._prepare()
        self._insert(*PROBE_ROWS, commit=False)
        self._suspect = False

    def prune(self, before: str, batch: int) -> int:
        """Delete up to `batch` rows of each table logged before `before` (ISO UTC); returns how many."""
        self._prepare()
        deleted = 0
        with self._db.transaction() as connection:
            for table in TABLES:
                deleted += connection.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE ts < ? LIMIT ?)",
                    (before, batch)).rowcount
        return deleted

    def checkpoint(self) -> None:
        """Move the WAL into the database without waiting for readers (PASSIVE); the journal size limit then
        truncates the WAL file."""
        self._prepare()
        self._db.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- internals -------------------------------------------------------------------------
    def _insert(self, predictions: list[tuple], errors: list[tuple], commit: bool = True,
                explanations: list[tuple] = ()) -> None:
        with self._db.transaction(commit) as connection:
            if predictions:
                connection.executemany(INSERT_PREDICTIONS, predictions)
            if explanations:
                connection.executemany(INSERT_EXPLANATIONS, explanations)
            if errors:
                connection.executemany(INSERT_ERRORS, errors)

    def _prepare(self) -> None:
        """Before a write: reopen what was deleted or replaced; after a failure, fresh descriptors."""
        self._reopen_moved()
        if self._suspect:
            self._jsonl.open()
            self._db.reconnect()
        if self._db.connection is None:
            raise sqlite3.OperationalError(f"{self.db_path} is being reopened: other workers still hold the old file")

    def _reopen_moved(self) -> tuple[bool, bool]:
        """Reopen each file the path no longer names; returns which were (database, jsonl)."""
        db_reason, jsonl_reason = self._db.moved(), self._jsonl.moved()
        if db_reason is None and self._db.reopen_pending:
            db_reason = "deleted"  # a reopen that could not finish yet
        if db_reason is not None:
            if not self._db.reopen(REOPEN_WAIT_S):
                raise sqlite3.OperationalError(f"{self.db_path} was {db_reason}; other workers still hold the old file")
            self._reopened("database", db_reason)
        if jsonl_reason is not None:
            rotated = self._jsonl.rotated()
            self._jsonl.open()
            if not rotated:
                self._reopened("jsonl", jsonl_reason)
        return db_reason is not None, jsonl_reason is not None and not rotated

    def _recommit_if_moved(self, predictions: list[tuple], errors: list[tuple], lines: list[str],
                           explanations: list[tuple] = ()) -> None:
        """A file deleted while the group was being written took the group with it: write it again."""
        db_moved, jsonl_moved = self._reopen_moved()
        if jsonl_moved:
            with self._jsonl.appending(lines):
                pass
        if db_moved:
            self._insert(predictions, errors, explanations=explanations)

    def _rotate_if_large(self) -> None:
        """predictions.jsonl -> .1 -> .2 ... once it passes the size limit (the other workers follow the rename)."""
        if not self._jsonl_max_bytes or self._jsonl.size() < self._jsonl_max_bytes:
            return
        with self._jsonl.locked() as fd:
            if os.fstat(fd).st_size < self._jsonl_max_bytes or self._jsonl.moved():
                return  # another worker rotated it meanwhile
            for index in range(self._jsonl_backups - 1, 0, -1):
                older = Path(f"{self.jsonl_path}.{index}")
                if older.exists():
                    os.replace(older, f"{self.jsonl_path}.{index + 1}")
            os.replace(self.jsonl_path, f"{self.jsonl_path}.1")
            Path(f"{self.jsonl_path}.{self._jsonl_backups + 1}").unlink(missing_ok=True)
        self._jsonl.open()

    def _reopened(self, file: str, reason: str) -> None:
        path = self.db_path if file == "database" else self.jsonl_path
        logger.warning("prediction log: %s was %s under the server; reopened it (rows committed to the old file "
                       "since it was %s are not in the new one)", path, reason, reason)
        if self._on_reopen is not None:
            self._on_reopen(file, reason)

