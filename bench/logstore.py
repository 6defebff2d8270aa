"""The prediction log's stores under the benchmark: a PostgreSQL of its own, and the writer measured in process.

PostgreSQL runs with fsync on here (the test suite's cluster turns it off to be quick): a commit then waits
for the disk as it would in production, which is what the "pg" peer's numbers must include.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prediction_log.location import LogLocation, parse_url, sqlite_in
from prediction_log.store import PredictionRow
from prediction_log.writer import PredictionLog
from scripts.postgres_cluster import PostgresCluster, server_bin_dir


@contextlib.contextmanager
def postgres_log() -> Iterator[Callable[[str], str]]:
    """A maker of empty databases (name -> URL) on a new local PostgreSQL, stopped and deleted afterwards.
    Each server and the writer measurement get a database of their own, so every row count is theirs."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise RuntimeError("the 'pg' peer needs PostgreSQL: bash scripts/install-team-servers.sh")
    cluster = PostgresCluster(bin_dir, fsync=True)
    try:
        cluster.start()
        yield lambda name: cluster.url(cluster.create_database(name=name))
    finally:
        cluster.stop()


def _rows(count: int, row: dict[str, Any]) -> list[PredictionRow]:
    return [PredictionRow(f"bench-{i}", "housing", "housing-regressor:bench", row, 250_000.0 + i, 1.0)
            for i in range(count)]


def writer_rows_per_second(location: LogLocation, row: dict[str, Any], rows: int = 1000,
                           seconds: float = 3.0) -> dict[str, Any]:
    """Groups of `rows` records (one predict_batch request each) committed back to back for `seconds`."""
    log = PredictionLog(location)
    log.start()
    group = _rows(rows, row)
    commits, started = 0, time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            asyncio.run(log.write(group))
            commits += 1
    finally:
        log.close()
    elapsed = time.perf_counter() - started
    return {"store": location.kind, "rows_per_group": rows, "groups": commits,
            "rows_per_s": round(commits * rows / elapsed), "ms_per_group": round(1000 * elapsed / commits, 2)}


def measure_writers(scratch: Path, row: dict[str, Any], log_url: str | None, seconds: float) -> list[dict[str, Any]]:
    """The writer's rows/s for 1,000-record groups on SQLite, and on PostgreSQL when there is one."""
    stores = [sqlite_in(scratch / "writer-sqlite")] + ([parse_url(log_url)] if log_url else [])
    return [writer_rows_per_second(location, row, seconds=seconds) for location in stores]
