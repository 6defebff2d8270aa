"""The window's statistics as the store computes them (monitoring/operations.py, monitoring/dialect.py) and its sample
(monitoring/sample.py), on a real SQLite log written by the real writer: the same numbers as pandas and numpy over
every row, a sample that is bounded, seeded and uniform, and queries that read the window through the indexes.
The same on PostgreSQL: tests/service/test_log_postgres.py."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring import feedback_window
from monitoring.logquery import Window, open_window
from monitoring.operations import PERCENTILES, VALUE_PERCENTILES, bucket_width, operations, prediction_distribution
from monitoring.sample import draw
from prediction_log.feedback import FeedbackItem, open_feedback_store
from prediction_log.location import LogLocation, sqlite_in
from prediction_log.store import ErrorRow, PredictionRow
from prediction_log.writer import PredictionLog

NOW = datetime.now(UTC)


def write_log(directory: Path | LogLocation, requests: int, hours: float = 10, old: int = 0, seed: int = 0) -> None:
    """`requests` housing requests spread over the last `hours` (every 7th a batch of 3 records, every 5th shadowed,
    every 11th answered by the challenger), one rejected request in 20, and `old` requests two days back."""
    rng = np.random.default_rng(seed)
    rows: list[PredictionRow | ErrorRow] = []
    for i in range(requests + old):
        age = timedelta(hours=hours * rng.random()) if i < requests else timedelta(days=2, seconds=i)
        ts = (NOW - age).isoformat(timespec="microseconds")
        if i % 20 == 19:
            rows.append(ErrorRow(f"e{i}", "housing", int(rng.choice([400, 413, 503])), {"error": "x"}, 0.3, ts))
            continue
        latency = float(rng.gamma(2.0, 4.0))
        arm, model = ("challenger", "housing-regressor:b") if i % 11 == 10 else ("champion", "housing-regressor:a")
        for position in range(3 if i % 7 == 6 else 1):
            inputs = {"median_income": float(rng.normal(4, 1)), "ocean_proximity": None if i % 3 else "INLAND"}
            value = float(rng.normal(200_000, 50_000))
            rows.append(PredictionRow(f"r{i}", "housing", model, inputs, value, latency, ts, arm, position))
            if i % 5 == 4 and arm == "champion":
                rows.append(PredictionRow(f"r{i}", "housing", "housing-regressor:b", inputs, value + 1, latency, ts,
                                          "shadow", position))
    log = PredictionLog(directory)
    log.start()
    asyncio.run(log.write(rows))
    log.close()
    location = directory if isinstance(directory, LogLocation) else sqlite_in(directory)
    store = open_feedback_store(location)  # the true values of every fourth answered record
    try:
        store.record("housing", [FeedbackItem(row.request_id, row.position, 200_000.0) for row in rows[::4]
                                 if isinstance(row, PredictionRow) and row.arm != "shadow"])
    finally:
        store.close()
    # each value arrived with its prediction (the store stamps now), as a steady stream of feedback would
    arrived = ("UPDATE feedback SET ts = (SELECT MAX(p.ts) FROM predictions p WHERE p.task = feedback.task "
               "AND p.request_id = feedback.request_id AND p.position = feedback.position)")
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as db:
            db.execute(arrived)
    else:
        import psycopg

        with psycopg.connect(location.conninfo) as db:
            db.execute(arrived)


def all_rows(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every prediction and error row, read whole (what the store's statistics must equal)."""
    with sqlite3.connect(directory / "predictions.db") as db:
        predictions = pd.read_sql("SELECT * FROM predictions", db)
        errors = pd.read_sql("SELECT * FROM request_errors", db)
    for frame in (predictions, errors):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return predictions, errors


def percentiles(values: pd.Series, which: tuple[int, ...]) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values.to_numpy(dtype=float), q)), 2) for q in which}


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("window")
    write_log(directory, requests=3000, old=500)
    return directory


def test_operations_are_the_numbers_numpy_gives_over_every_row(log: Path) -> None:
    since = (NOW - timedelta(hours=24)).isoformat()
    with open_window(sqlite_in(log), "housing", since) as window:
        ops = operations(window)
        distribution = prediction_distribution(window)
    predictions, errors = all_rows(log)
    predictions = predictions[(predictions["ts"] >= since) & (predictions["arm"] != "shadow")]
    errors = errors[errors["ts"] >= since]
    first = predictions[predictions["position"] == 0]
    assert ops["predictions"] == len(predictions) and ops["requests"] == len(first) + len(errors)
    assert ops["errors"] == {str(k): int(v) for k, v in sorted(errors["status"].value_counts().items())}
    assert ops["error_rate"] == round(len(errors) / ops["requests"], 4)
    assert ops["arms"] == {"challenger": int((predictions["arm"] == "challenger").sum()),
                           "champion": int((predictions["arm"] == "champion").sum())}
    assert ops["latency_ms"] == percentiles(first["latency_ms"], PERCENTILES)
    assert distribution == {"mean": round(float(predictions["prediction"].astype(float).mean()), 2),
                            **percentiles(predictions["prediction"].astype(float), VALUE_PERCENTILES)}
    times = pd.concat([first["ts"], errors["ts"]])
    freq, _ = bucket_width(times.min().to_pydatetime(), times.max().to_pydatetime())
    assert ops["bucket"] == freq == "15min"
    expected = []
    for start, group in pd.concat([first.assign(status=200), errors]).groupby(times.dt.floor(freq)):
        answered = group[group["status"] == 200]
        expected.append({"start": start.isoformat(), "requests": len(group), "errors": len(group) - len(answered),
                         "error_rate": round((len(group) - len(answered)) / len(group), 4),
                         "latency_ms": percentiles(answered["latency_ms"], PERCENTILES)})
    assert ops["over_time"] == expected and len(expected) > 30


def test_the_sample_is_bounded_seeded_and_uniform_over_the_window(log: Path) -> None:
    since = (NOW - timedelta(hours=24)).isoformat()
    predictions, _ = all_rows(log)
    window_rows = predictions[(predictions["ts"] >= since) & (predictions["arm"] != "shadow")]
    n, k = len(window_rows), 1000
    with open_window(sqlite_in(log), "housing", since) as window:
        first, again, other = (draw(window, k, seed, n) for seed in (1, 1, 2))
        whole = draw(window, n + 10, 1, n)
    assert len(first.rows) == k and not first.whole and whole.whole and len(whole.rows) == n
    assert first.rows.equals(again.rows)
    keys = [set(zip(s.rows["request_id"], s.rows["position"], strict=True)) for s in (first, other)]
    assert len(keys[0] & keys[1]) < 0.2 * k  # another seed, another sample (k * k / n in common by chance)
    assert keys[0] <= set(zip(window_rows["request_id"], window_rows["position"], strict=True))
    # uniform over time: each tenth of the window's rows (by time) holds a tenth of the sample
    times = window_rows.set_index(["request_id", "position"])["ts"].sort_values()
    deciles = pd.qcut(times.rank(method="first"), 10, labels=False)
    shares = deciles.loc[list(keys[0])].value_counts(normalize=True).sort_index()
    assert ((shares - 0.1).abs() < 0.03).all(), shares.tolist()  # 3 sd of a share of 1,000 is 0.028
    assert first.margin() == pytest.approx(1.96 * np.sqrt(0.25 / k * (1 - k / n)))


def unindexed(window: Window, sql: str, args: tuple) -> list[str]:
    """The steps of SQLite's plan that read a table of the log without an index."""
    plan = [row[3] for row in window.connection.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    reads = [step for step in plan if re.match(r"(SCAN|SEARCH) (?!\(|CONSTANT|\d)", step)]  # tables, not subqueries
    assert reads, plan
    return [step for step in reads if " INDEX " not in step]


def test_every_query_of_the_window_reads_it_through_an_index(log: Path) -> None:
    since = (NOW - timedelta(hours=1)).isoformat()
    with open_window(sqlite_in(log), "housing", since) as window:
        ops = operations(window)
        prediction_distribution(window)
        draw(window, 100, 3, ops["predictions"])
        window.newest_model()
        assert feedback_window.arm_counts(window)  # the performance half: feedback joined with its predictions
        for rows in (feedback_window.rows, feedback_window.pairs, feedback_window.unshadowed):
            assert sum(len(chunk) for chunk in rows(window)) > 0, rows
        assert len(window.executed) >= 11
        for sql, args in window.executed:
            assert unindexed(window, sql, args) == [], sql
        # the check can fail: a query that filters on a column no index holds scans the table
        assert unindexed(window, "SELECT COUNT(*) FROM predictions WHERE latency_ms > ?", (1.0,))
