"""Large prediction logs for the monitoring benchmarks: the rows a live service logged, repeated with spread times.

The seed is what a real `bentoml serve` logged for real requests (its predictions.db: predictions, rejected
requests and the true values sent back to /housing/feedback, as the service stored them). A log of N predictions
repeats the seed's requests until it holds N rows; copy c of a request gets the id `<id>~<c>` and a time spread
evenly over `span` ending at `end`, the rows of one request sharing it (its feedback a second later), and its
sample key is computed as the writer computes it. Rows go in in time order with the
secondary indexes dropped and rebuilt afterwards (the migrations' own statements): the same tables and indexes
as a log the service grew, built in minutes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prediction_log.sample_key import sample_key
from prediction_log.schema import (
    ERROR_COLUMNS,
    FEEDBACK_COLUMNS,
    MIGRATIONS,
    PREDICTION_COLUMNS,
    migrate_postgresql,
    migrate_sqlite,
)

CHUNK = 50_000
TABLES = ("predictions", "request_errors", "feedback")
COLUMNS = {"predictions": PREDICTION_COLUMNS, "request_errors": ERROR_COLUMNS, "feedback": FEEDBACK_COLUMNS}


@dataclass(frozen=True)
class Seed:
    """What a live service logged: prediction rows grouped by request, and its rejected requests."""

    requests: list[list[tuple]]  # each request's rows: (request_id, task, model, inputs, prediction, latency_ms, arm,
                                 # position), inputs and prediction as the JSON text the store holds
    errors: list[tuple]          # (request_id, task, status, error, latency_ms)
    feedback: dict[tuple[str, str], list[tuple]]  # (task, request_id) -> [(position, actual JSON text)]

    @property
    def rows(self) -> int:
        return sum(len(request) for request in self.requests)


def read_seed(db_path: Path) -> Seed:
    """The predictions and rejected requests of a service's SQLite log, in log order."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        requests: dict[tuple[str, str], list[tuple]] = {}
        for row in db.execute("SELECT request_id, task, model, inputs, prediction, latency_ms, arm, position "
                              "FROM predictions ORDER BY id"):
            requests.setdefault((row[0], row[6]), []).append(row)
        errors = db.execute("SELECT request_id, task, status, error, latency_ms FROM request_errors ORDER BY id")
        feedback: dict[tuple[str, str], list[tuple]] = {}
        for task, request_id, position, actual in db.execute("SELECT task, request_id, position, actual FROM "
                                                             "feedback ORDER BY id"):
            feedback.setdefault((task, request_id), []).append((position, actual))
        return Seed(list(requests.values()), errors.fetchall(), feedback)


def record_seed(repo: Path, work_dir: Path, code_root: Path, requests: int = 3000) -> Seed:
    """What a live `bentoml serve` of the project (1 worker, logging to SQLite) logs for real requests: single and
    batch housing predictions from the test split, iris predictions, some invalid requests (400), and the true
    values of every third single housing prediction sent back (POST /housing/feedback_batch)."""
    import httpx
    import pandas as pd

    from bench.servers import ProjectServer
    from bench.workload import housing_rows

    housing = housing_rows(repo, requests)
    truth = pd.read_csv(repo / "data" / "prepared" / "housing" / "test.csv").dropna()["median_house_value"].tolist()
    iris = pd.read_csv(repo / "data" / "prepared" / "iris" / "test.csv").drop(columns="species")
    iris_rows = iris.to_dict(orient="records")
    server = ProjectServer(work_dir, 1, code_root, repo)
    server.start()
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            feedback = []
            for i in range(requests):
                if i % 50 == 49:  # invalid: rejected with 400, a row of request_errors
                    answer = client.post("/housing/predict", json={"longitude": "east"})
                elif i % 10 == 9:  # a batch of 4 records
                    batch = [housing[(i + k) % len(housing)] for k in range(4)]
                    answer = client.post("/housing/predict_batch", json={"records": batch})
                elif i % 4 == 3:
                    answer = client.post("/iris/predict", json=iris_rows[i % len(iris_rows)])
                else:
                    answer = client.post("/housing/predict", json=housing[i % len(housing)],
                                         headers={"X-Request-ID": f"seed-{i}"})
                    if i % 3 == 0:
                        feedback.append({"request_id": f"seed-{i}", "actual": truth[i % len(housing)]})
                if answer.status_code not in (200, 400):
                    raise RuntimeError(f"the seed server answered {answer.status_code}: {answer.text[:300]}")
            for start in range(0, len(feedback), 100):
                answer = client.post("/housing/feedback_batch", json={"items": feedback[start:start + 100]})
                if answer.status_code != 200:
                    raise RuntimeError(f"the seed server answered {answer.status_code}: {answer.text[:300]}")
    finally:
        server.stop()
    return read_seed(server.log_dir / "predictions.db")


def _rows(seed: Seed, predictions: int, end: datetime, span: timedelta) -> Iterator[tuple[str, tuple]]:
    """(table, values) in time order: copies of the seed's requests until `predictions` prediction rows."""
    copies = -(-predictions // seed.rows)
    slots = len(seed.requests) + len(seed.errors)
    step = span / (copies * slots)
    start = end - span
    written = 0
    for copy in range(copies):
        for index, request in enumerate(seed.requests):
            ts = (start + step * (copy * slots + index)).isoformat(timespec="microseconds")
            for request_id, task, model, inputs, prediction, latency, arm, position in request:
                if written == predictions:
                    return
                new_id = f"{request_id}~{copy}"
                yield "predictions", (ts, new_id, task, model, inputs, prediction, latency, arm, position,
                                      sample_key(task, new_id, position, arm, ts))
                written += 1
            request_id, task = request[0][:2]
            arrived = (start + step * (copy * slots + index) + timedelta(seconds=1)).isoformat(timespec="microseconds")
            for position, actual in seed.feedback.get((task, request_id), ()):
                yield "feedback", (arrived, task, f"{request_id}~{copy}", position, actual)
        for index, (request_id, task, status, error, latency) in enumerate(seed.errors):
            ts = (start + step * (copy * slots + len(seed.requests) + index)).isoformat(timespec="microseconds")
            yield "request_errors", (ts, f"{request_id}~{copy}", task, status, error, latency)


def _index_statements(dialect: str) -> list[str]:
    return [statement for version in sorted(MIGRATIONS) for statement in MIGRATIONS[version][dialect]
            if statement.startswith("CREATE INDEX") and any(f" ON {table} " in statement for table in TABLES)]


def _index_names(dialect: str) -> list[str]:
    return [statement.split()[5] for statement in _index_statements(dialect)]


def build_sqlite(path: Path, seed: Seed, predictions: int, end: datetime, span: timedelta) -> dict[str, Any]:
    """A SQLite log at `path` holding `predictions` prediction rows (and the seed's share of errors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        migrate_sqlite(db)
        for name in _index_names("sqlite"):
            db.execute(f"DROP INDEX {name}")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")
        inserts = {table: f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                   for table, columns in COLUMNS.items()}
        counts = _load(_rows(seed, predictions, end, span),
                       lambda table, chunk: _sqlite_chunk(db, inserts[table], chunk))
        for statement in _index_statements("sqlite"):
            db.execute(statement)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return {**counts, "bytes": path.stat().st_size}


def _sqlite_chunk(db: sqlite3.Connection, insert: str, chunk: list[tuple]) -> None:
    db.execute("BEGIN")
    db.executemany(insert, chunk)
    db.execute("COMMIT")


def build_postgres(url: str, seed: Seed, predictions: int, end: datetime, span: timedelta) -> dict[str, Any]:
    """The same rows in an empty PostgreSQL database, loaded with COPY, then indexed and analyzed."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        migrate_postgresql(connection)
        for name in _index_names("postgresql"):
            connection.execute(f"DROP INDEX {name}")
        copies = {table: f"COPY {table} ({', '.join(columns)}) FROM STDIN" for table, columns in COLUMNS.items()}

        def copy_chunk(table: str, chunk: list[tuple]) -> None:
            with connection.transaction(), connection.cursor() as cursor, cursor.copy(copies[table]) as copy:
                for row in chunk:
                    copy.write_row(row)

        counts = _load(_rows(seed, predictions, end, span), copy_chunk)
        for statement in _index_statements("postgresql"):
            connection.execute(statement)
        for table in TABLES:
            connection.execute(f"VACUUM ANALYZE {table}")
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {**counts, "bytes": int(size)}


def _load(rows: Iterator[tuple[str, tuple]], write: Any) -> dict[str, int]:
    """Write the rows in chunks per table, in order; the count per table."""
    chunks: dict[str, list[tuple]] = {table: [] for table in TABLES}
    counts = dict.fromkeys(TABLES, 0)
    for table, values in rows:
        chunk = chunks[table]
        chunk.append(values)
        counts[table] += 1
        if len(chunk) >= CHUNK:
            write(table, chunk)
            chunk.clear()
    for table, chunk in chunks.items():
        if chunk:
            write(table, chunk)
    return counts
