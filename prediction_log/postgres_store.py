"""The PostgreSQL store: one database for every replica of the service.

A group's rows go in with COPY, in one transaction: the commit returns once PostgreSQL has made it
durable, and only then are the group's requests answered. COPY, measured against executemany (plain and
in pipeline mode) on this project's rows, was the fastest for every group size (bench/NOTES.md). A lost
connection (server restarted, network, failover) fails the group at hand with 503s; the next write or idle
check reconnects, so the service recovers by itself as soon as the server is back.
"""

from __future__ import annotations

from typing import Any

import psycopg

from prediction_log.location import LogLocation
from prediction_log.schema import (
    ERROR_COLUMNS,
    EXPLANATION_COLUMNS,
    PREDICTION_COLUMNS,
    TABLES,
    migrate_postgresql,
)

CONNECT_TIMEOUT_S = 3  # a server that does not answer fails the group quickly instead of holding requests
STATEMENT_TIMEOUT_MS = 10_000
COPY_PREDICTIONS = f"COPY predictions ({', '.join(PREDICTION_COLUMNS)}) FROM STDIN"
COPY_EXPLANATIONS = f"COPY explanations ({', '.join(EXPLANATION_COLUMNS)}) FROM STDIN"
COPY_ERRORS = f"COPY request_errors ({', '.join(ERROR_COLUMNS)}) FROM STDIN"
PROBE_ROWS = ([("1970-01-01T00:00:00+00:00", "", "", "", "{}", "null", 0.0, "champion", 0, 0)],
              [("1970-01-01T00:00:00+00:00", "", "", 0, "{}", 0.0)])


def connect(location: LogLocation, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(location.conninfo, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
                           options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}", application_name="prediction-log")


class PostgresStore:
    """One worker's connection to the PostgreSQL log. Errors are raised as psycopg.Error (or OSError)."""

    errors = (psycopg.Error, OSError)
    # a delete locks only the rows it deletes (the writers insert beside it): whole batches, and half the time left
    # to the server's CPU and disk
    PRUNE_BUDGET_S: float | None = None
    PRUNE_DUTY = 0.5

    def __init__(self, location: LogLocation, on_reopen: Any = None, **_: Any) -> None:
        self.location = location
        self._connection: psycopg.Connection | None = None

    def open(self) -> None:
        """Connect and bring the tables to the current schema version."""
        self._connection = connect(self.location)
        migrate_postgresql(self._connection)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def write(self, predictions: list[tuple], errors: list[tuple], lines: list[str],
              explanations: list[tuple] = ()) -> None:
        self._copy(predictions, errors, commit=True, explanations=explanations)

    def check(self) -> None:
        """Idle: ask the server, reconnecting if the connection was lost, so readiness and the next request see
        the truth (a connection to a server that went away looks open until it is used)."""
        connection = self._ready()
        try:
            connection.execute("SELECT 1")
            connection.rollback()
        except BaseException:
            self._drop_if_broken()
            raise

    def probe(self) -> None:
        self._copy(*PROBE_ROWS, commit=False)

    def prune(self, before: str, batch: int) -> int:
        """Delete up to `batch` rows of each table logged before `before`, in one short transaction."""
        connection = self._ready()
        deleted = 0
        try:
            with connection.transaction():
                for table in TABLES:
                    deleted += connection.execute(
                        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE ts < %s LIMIT %s)",
                        (before, batch)).rowcount
        except BaseException:
            self._drop_if_broken()
            raise
        return deleted

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints and vacuums on its own."""

    # -- internals -------------------------------------------------------------------------
    def _copy(self, predictions: list[tuple], errors: list[tuple], commit: bool,
              explanations: list[tuple] = ()) -> None:
        connection = self._ready()
        try:
            with connection.cursor() as cursor:
                for statement, rows in ((COPY_PREDICTIONS, predictions), (COPY_EXPLANATIONS, explanations),
                                        (COPY_ERRORS, errors)):
                    if rows:
                        with cursor.copy(statement) as copy:
                            for row in rows:
                                copy.write_row(row)
            if commit:
                connection.commit()
            else:
                connection.rollback()
        except BaseException:
            self._drop_if_broken(rollback=True)
            raise

    def _ready(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._reconnect()
        assert self._connection is not None
        return self._connection

    def _reconnect(self) -> None:
        self.close()
        self._connection = connect(self.location)
        migrate_postgresql(self._connection)  # the server may be a new one (failover, a restored backup)

    def _drop_if_broken(self, rollback: bool = False) -> None:
        """After a failure: roll back what can be, and forget a connection that cannot be used again."""
        connection = self._connection
        if connection is None:
            return
        if not connection.closed and not connection.broken and rollback:
            try:
                connection.rollback()
                return
            except psycopg.Error:
                pass
        self.close()
