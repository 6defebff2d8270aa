"""The log's tables on each store, created and migrated at start under a schema version.

Every server runs `migrate` when it opens the log. The migrations run inside one transaction that holds
the store's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so two servers starting at
once do not race: the second finds the version the first wrote and has nothing to do. A database made
before versioning (the SQLite tables of earlier releases) is version 1: its CREATE ... IF NOT EXISTS are
no-ops.

Add a migration by appending to MIGRATIONS: never edit one that has shipped.
"""

from __future__ import annotations

from typing import Any

# Any number the project owns: the key of PostgreSQL's advisory lock around migrations.
MIGRATION_LOCK = 72_0415_1990

# The same statement on both stores (UPDATE ... FROM and window functions: SQLite 3.33+, PostgreSQL).
BACKFILL_POSITIONS = """UPDATE predictions SET position = numbered.n
    FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY task, request_id ORDER BY id) - 1 AS n
          FROM predictions) AS numbered
    WHERE predictions.id = numbered.id AND numbered.n > 0"""
MIGRATIONS: dict[int, dict[str, list[str]]] = {
    1: {
        "sqlite": [
            """CREATE TABLE IF NOT EXISTS predictions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,              -- ISO 8601 UTC
                request_id TEXT NOT NULL,
                task TEXT NOT NULL,
                model TEXT NOT NULL,
                inputs TEXT NOT NULL,          -- JSON object: the record as the client sent it
                prediction TEXT NOT NULL,      -- JSON value
                latency_ms REAL NOT NULL       -- request received -> prediction ready
            )""",
            "CREATE INDEX IF NOT EXISTS predictions_task_ts ON predictions (task, ts)",
            """CREATE TABLE IF NOT EXISTS request_errors (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,
                request_id TEXT NOT NULL,
                task TEXT NOT NULL,
                status INTEGER NOT NULL,       -- HTTP status answered
                error TEXT NOT NULL,           -- JSON: what was wrong (a bounded summary)
                latency_ms REAL NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS request_errors_task_ts ON request_errors (task, ts)",
        ],
        "postgresql": [
            """CREATE TABLE IF NOT EXISTS predictions (
                id BIGSERIAL PRIMARY KEY,
                ts TIMESTAMPTZ NOT NULL,
                request_id TEXT NOT NULL,
                task TEXT NOT NULL,
                model TEXT NOT NULL,
                inputs JSONB NOT NULL,
                prediction JSONB NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS predictions_task_ts ON predictions (task, ts)",
            """CREATE TABLE IF NOT EXISTS request_errors (
                id BIGSERIAL PRIMARY KEY,
                ts TIMESTAMPTZ NOT NULL,
                request_id TEXT NOT NULL,
                task TEXT NOT NULL,
                status INTEGER NOT NULL,
                error JSONB NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS request_errors_task_ts ON request_errors (task, ts)",
        ],
    },
    2: {  # lookups by request id (tests, feedback) and retention by time alone
        "sqlite": ["CREATE INDEX IF NOT EXISTS predictions_request_id ON predictions (request_id)",
                   "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts)",
                   "CREATE INDEX IF NOT EXISTS request_errors_ts ON request_errors (ts)"],
        "postgresql": ["CREATE INDEX IF NOT EXISTS predictions_request_id ON predictions (request_id)",
                       "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts)",
                       "CREATE INDEX IF NOT EXISTS request_errors_ts ON request_errors (ts)"],
    },
    4: {  # explanations (POST /<task>/explain): a row per explained record, the columns of predictions;
        # `prediction` holds {"prediction", "base_value", "contributions"} as answered
        "sqlite": [
            """CREATE TABLE IF NOT EXISTS explanations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,
                request_id TEXT NOT NULL,
                task TEXT NOT NULL,
                model TEXT NOT NULL,
                inputs TEXT NOT NULL,          -- JSON object: the record as the client sent it
                prediction TEXT NOT NULL,      -- JSON: prediction, base_value, contributions per raw field
                latency_ms REAL NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS explanations_task_ts ON explanations (task, ts)",
            "CREATE INDEX IF NOT EXISTS explanations_ts ON explanations (ts)",
        ],
        "postgresql": [
            """CREATE TABLE IF NOT EXISTS explanations (
                id BIGSERIAL PRIMARY KEY,
                ts TIMESTAMPTZ NOT NULL,
                request_id TEXT NOT NULL,
                task TEXT NOT NULL,
                model TEXT NOT NULL,
                inputs JSONB NOT NULL,
                prediction JSONB NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS explanations_task_ts ON explanations (task, ts)",
            "CREATE INDEX IF NOT EXISTS explanations_ts ON explanations (ts)",
        ],
    },
    5: {  # champion and challenger: which arm made each prediction row, its index within the request,
        # and the true values clients send back (POST /<task>/feedback), one per (task, request_id, position)
        "sqlite": [
            "ALTER TABLE predictions ADD COLUMN arm TEXT NOT NULL DEFAULT 'champion'",
            "ALTER TABLE predictions ADD COLUMN position INTEGER NOT NULL DEFAULT 0",
            # rows logged before: a batch request's records shared one request id, in order; number them so
            # feedback for record 3 of an old batch finds record 3 (and only it)
            BACKFILL_POSITIONS,
            """CREATE TABLE IF NOT EXISTS feedback (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,              -- when the feedback arrived (ISO 8601 UTC)
                task TEXT NOT NULL,
                request_id TEXT NOT NULL,
                position INTEGER NOT NULL,     -- the record's index within its request
                actual TEXT NOT NULL,          -- JSON value: the true target
                UNIQUE (task, request_id, position)
            )""",
            "CREATE INDEX IF NOT EXISTS feedback_task_ts ON feedback (task, ts)",
            "CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts)",
        ],
        "postgresql": [
            "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS arm TEXT NOT NULL DEFAULT 'champion'",
            "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS position INTEGER NOT NULL DEFAULT 0",
            BACKFILL_POSITIONS,
            """CREATE TABLE IF NOT EXISTS feedback (
                id BIGSERIAL PRIMARY KEY,
                ts TIMESTAMPTZ NOT NULL,
                task TEXT NOT NULL,
                request_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                actual JSONB NOT NULL,
                UNIQUE (task, request_id, position)
            )""",
            "CREATE INDEX IF NOT EXISTS feedback_task_ts ON feedback (task, ts)",
            "CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts)",
        ],
    },
    6: {  # the sample key (prediction_log/sample_key.py): the monitor's seeded uniform sample of a window, drawn by
        # the store; rows logged before keep NULL (no rewrite of a large table at start) and are keyed by their id
        "sqlite": ["ALTER TABLE predictions ADD COLUMN sample_key INTEGER"],
        "postgresql": ["ALTER TABLE predictions ADD COLUMN IF NOT EXISTS sample_key BIGINT"],
    },
}
SCHEMA_VERSION = max(MIGRATIONS)
ARMS_VERSION = 5  # the version that added `arm`, `position` and the feedback table (champion and challenger)
SAMPLE_KEY_VERSION = 6  # the version that added `sample_key`
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"

PREDICTION_COLUMNS = ("ts", "request_id", "task", "model", "inputs", "prediction", "latency_ms", "arm", "position",
                      "sample_key")
# explanations have the columns predictions had before version 5 (an explanation is always the champion's)
EXPLANATION_COLUMNS = PREDICTION_COLUMNS[:7]
FEEDBACK_COLUMNS = ("ts", "task", "request_id", "position", "actual")
# Every table of rows, in the order retention prunes them.
TABLES = ("predictions", "request_errors", "explanations", "feedback")
ERROR_COLUMNS = ("ts", "request_id", "task", "status", "error", "latency_ms")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


def pending(current: int) -> list[int]:
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(f"the prediction log's schema is version {current}; this release knows up to "
                           f"{SCHEMA_VERSION}: upgrade the service or use another database")
    return [version for version in sorted(MIGRATIONS) if version > current]


def migrate_sqlite(connection: Any) -> list[int]:
    """Bring a SQLite log (autocommit connection) to SCHEMA_VERSION; returns the versions applied."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(VERSION_TABLE)
        row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
        applied = pending(row[0] or 0)
        for version in applied:
            for statement in MIGRATIONS[version]["sqlite"]:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return applied


def migrate_postgresql(connection: Any) -> list[int]:
    """Bring a PostgreSQL log to SCHEMA_VERSION under an advisory lock; returns the versions applied."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        connection.execute(VERSION_TABLE)
        row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
        applied = pending(row[0] or 0)
        for version in applied:
            for statement in MIGRATIONS[version]["postgresql"]:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return applied
