"""`python -m bench.pg_insert`: how a group of prediction rows is best written to PostgreSQL.

Which is faster for the log, executemany in pipeline mode or COPY? This times
one committed group of N rows (the unit of the log's group commit) for four methods on a PostgreSQL of
its own with fsync on, interleaved over rounds, and prints medians; the floor beside them is an empty
durable commit (what durability alone costs per group). The store uses COPY (prediction_log/postgres_store.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import psycopg

from bench.logstore import postgres_log
from prediction_log.postgres_store import COPY_PREDICTIONS
from prediction_log.schema import PREDICTION_COLUMNS, migrate_postgresql

INSERT = (f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
          f"VALUES ({', '.join(['%s'] * len(PREDICTION_COLUMNS))})")
RECORD = json.dumps({"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
                     "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252,
                     "ocean_proximity": "NEAR BAY"})


def rows(count: int) -> list[tuple]:
    return [("2026-12-01T00:00:00+00:00", f"bench-{i}", "housing", "housing-regressor:bench", RECORD,
             str(250_000.0 + i), 1.0, "champion", 0, i) for i in range(count)]


def empty_commit(connection: psycopg.Connection, group: list[tuple]) -> None:
    connection.execute("SELECT pg_current_xact_id()")  # a transaction id: the commit is flushed to disk
    connection.commit()


def executemany(connection: psycopg.Connection, group: list[tuple]) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(INSERT, group)
    connection.commit()


def executemany_pipeline(connection: psycopg.Connection, group: list[tuple]) -> None:
    with connection.pipeline(), connection.cursor() as cursor:
        cursor.executemany(INSERT, group)
    connection.commit()


def copy(connection: psycopg.Connection, group: list[tuple]) -> None:
    with connection.cursor() as cursor, cursor.copy(COPY_PREDICTIONS) as writer:
        for row in group:
            writer.write_row(row)
    connection.commit()


METHODS: dict[str, Callable[[psycopg.Connection, list[tuple]], None]] = {
    "empty commit (floor)": empty_commit, "executemany": executemany,
    "executemany, pipeline mode": executemany_pipeline, "COPY": copy}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,16,1000", help="group sizes (rows per commit)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    timings: dict[tuple[str, int], list[float]] = {}
    with postgres_log() as new_database, psycopg.connect(new_database("insert_methods")) as connection:
        migrate_postgresql(connection)
        for _ in range(args.rounds):
            for size in sizes:
                group = rows(size)
                for name, method in METHODS.items():
                    started = time.perf_counter()
                    method(connection, group)
                    timings.setdefault((name, size), []).append((time.perf_counter() - started) * 1e3)
    print(f"python -m bench.pg_insert --sizes {args.sizes} --rounds {args.rounds}  (median ms per committed group)")
    print(f"{'method':<28}" + "".join(f"{size:>10} rows" for size in sizes))
    for name in METHODS:
        print(f"{name:<28}" + "".join(f"{statistics.median(timings[name, size]):>15.2f}" for size in sizes))


if __name__ == "__main__":
    main()
