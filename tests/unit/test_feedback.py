"""Feedback on a real SQLite log: the version 4 -> 5 migration, arm and position through the real writer, and the
statuses of FeedbackStore.record (the same checks run on PostgreSQL in tests/service/test_log_postgres.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prediction_log.feedback import FeedbackItem, FeedbackStore, LoggedPrediction, open_feedback_store
from prediction_log.location import LogLocation, sqlite_in
from prediction_log.prune import main as prune_main
from prediction_log.schema import SCHEMA_VERSION, migrate_sqlite
from prediction_log.store import PredictionRow
from prediction_log.writer import PredictionLog
from tests.support.old_logs import create_version_4_log


def shadowed_rows() -> list[PredictionRow]:
    """One housing request of two records answered by the champion and shadowed by the challenger, one A/B request
    answered by the challenger, and an iris request."""
    rows = [PredictionRow("req", "housing", model, {"i": i}, value + i, 1.0, "", arm, i)
            for model, arm, value in (("champ:1", "champion", 100.0), ("chall:2", "shadow", 200.0)) for i in range(2)]
    rows.append(PredictionRow("ab", "housing", "chall:2", {"i": 0}, 5.0, 1.0, "", "challenger", 0))
    rows.append(PredictionRow("flower", "iris", "iris:1", {}, {"species": "setosa", "probabilities": {}}, 1.0))
    return rows


def write(location: LogLocation | Path, rows: list[PredictionRow]) -> None:
    log = PredictionLog(location)
    log.start()
    try:
        asyncio.run(log.write(rows))
    finally:
        log.close()


def check_statuses(store: FeedbackStore) -> None:
    """What both stores must answer for the rows of `shadowed_rows`."""
    first = store.record("housing", [FeedbackItem("req", 0, 150.0), FeedbackItem("req", 1, 151.0),
                                     FeedbackItem("req", 0, 999.0),  # again, within the same call
                                     FeedbackItem("req", 7, 1.0), FeedbackItem("nope", 0, 1.0)])
    assert [r.status for r in first] == ["stored", "stored", "duplicate", "unknown", "unknown"]
    assert first[0].predictions == (LoggedPrediction("champ:1", "champion", 100.0),
                                    LoggedPrediction("chall:2", "shadow", 200.0))
    assert first[1].predictions[1] == LoggedPrediction("chall:2", "shadow", 201.0)
    assert first[3].predictions == () and first[4].predictions == ()
    again = store.record("housing", [FeedbackItem("req", 0, 1.0), FeedbackItem("ab", 0, 4.0)])
    assert [r.status for r in again] == ["duplicate", "stored"]
    assert again[1].predictions == (LoggedPrediction("chall:2", "challenger", 5.0),)
    assert [r.status for r in store.record("iris", [FeedbackItem("req", 0, "setosa")])] == ["unknown"]  # wrong task
    iris = store.record("iris", [FeedbackItem("flower", 0, "setosa")])
    assert iris[0].status == "stored" and iris[0].predictions[0].prediction == {"species": "setosa",
                                                                                "probabilities": {}}


def test_feedback_statuses_and_the_mirror_on_sqlite(tmp_path: Path) -> None:
    write(tmp_path, shadowed_rows())
    store = open_feedback_store(sqlite_in(tmp_path))
    try:
        check_statuses(store)
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        stored = db.execute("SELECT task, request_id, position, actual FROM feedback ORDER BY id").fetchall()
    assert stored == [("housing", "req", 0, "150.0"), ("housing", "req", 1, "151.0"), ("housing", "ab", 0, "4.0"),
                      ("iris", "flower", 0, '"setosa"')]  # the first value of a duplicate is kept
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    mirrored = [(line["task"], line["request_id"], line["position"], line["actual"]) for line in lines
                if line.get("kind") == "feedback"]
    assert mirrored == [(task, rid, pos, json.loads(actual)) for task, rid, pos, actual in stored]


def test_arm_and_position_go_through_the_writer_into_the_database_and_the_mirror(tmp_path: Path) -> None:
    write(tmp_path, shadowed_rows())
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        logged = db.execute("SELECT request_id, model, arm, position FROM predictions ORDER BY id").fetchall()
    expected = [("req", "champ:1", "champion", 0), ("req", "champ:1", "champion", 1),
                ("req", "chall:2", "shadow", 0), ("req", "chall:2", "shadow", 1),
                ("ab", "chall:2", "challenger", 0), ("flower", "iris:1", "champion", 0)]
    assert logged == expected
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [(line["request_id"], line["model"], line["arm"], line["position"]) for line in lines] == expected


def test_a_version_4_log_migrates_to_5_keeping_its_rows(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "predictions.db", isolation_level=None)
    create_version_4_log(db.execute, "sqlite")
    assert migrate_sqlite(db) == [5, 6] and SCHEMA_VERSION == 6
    assert db.execute("SELECT request_id, arm, position FROM predictions ORDER BY id").fetchall() == [
        ("old", "champion", 0), ("batch", "champion", 0), ("batch", "champion", 1), ("batch", "champion", 2)]
    db.close()
    store = open_feedback_store(sqlite_in(tmp_path))  # old rows take feedback: the champion answered them
    try:
        old, third = store.record("housing", [FeedbackItem("old", 0, 2.0), FeedbackItem("batch", 2, 3.0)])
    finally:
        store.close()
    assert old.status == "stored" and old.predictions == (LoggedPrediction("m", "champion", 1.5),)
    assert third.status == "stored" and third.predictions == (LoggedPrediction("m", "champion", 12.0),)


def test_concurrent_calls_store_each_record_once_beside_a_busy_writer(tmp_path: Path) -> None:
    """Threads sharing one store, a second store (another worker) and the writer committing meanwhile: each record
    is stored exactly once, and nobody waits on anybody's lock for long (the mirror's flock is always taken first)."""
    write(tmp_path, [PredictionRow(f"r{i}", "housing", "m", {}, float(i), 1.0) for i in range(20)])
    stores = [open_feedback_store(sqlite_in(tmp_path)) for _ in range(2)]
    log = PredictionLog(tmp_path)
    log.start()
    stop = threading.Event()

    def keep_writing() -> None:
        i = 0
        while not stop.is_set():
            asyncio.run(log.write([PredictionRow(f"busy{i}", "housing", "m", {}, 1.0, 1.0)]))
            i += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            calls = list(pool.map(lambda k: stores[k % 2].record(
                "housing", [FeedbackItem(f"r{i}", 0, float(k)) for i in range(20)]), range(8)))
    finally:
        stop.set()
        writer.join()
        log.close()
        for store in stores:
            store.close()
    for i in range(20):
        assert sorted(call[i].status for call in calls) == ["duplicate"] * 7 + ["stored"], i
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 20
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert sum('"kind": "feedback"' in line for line in lines) == 20


def test_retention_prunes_old_feedback(tmp_path: Path) -> None:
    write(tmp_path, [PredictionRow(rid, "housing", "m", {}, 1.0, 1.0) for rid in ("r", "s")])
    store = open_feedback_store(sqlite_in(tmp_path))
    try:
        store.record("housing", [FeedbackItem("r", 0, 1.0)], ts="2020-01-01T00:00:00.000000+00:00")
        store.record("housing", [FeedbackItem("s", 0, 1.0)])
    finally:
        store.close()
    assert prune_main(["--log-dir", str(tmp_path), "--days", "30"]) == 0
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        assert db.execute("SELECT request_id FROM feedback").fetchall() == [("s",)]


def test_a_reused_request_id_names_the_newest_prediction_of_each_arm(tmp_path: Path) -> None:
    """A client that sends the same X-Request-ID twice: its feedback scores the newer answer, once, in the service
    and in the monitor's join."""
    from monitoring import feedback_window
    from monitoring.logquery import open_window

    write(tmp_path, [PredictionRow("same", "housing", "champ:1", {}, 1.0, 1.0),
                     PredictionRow("same", "housing", "champ:1", {}, 2.0, 1.0)])
    store = open_feedback_store(sqlite_in(tmp_path))
    [result] = store.record("housing", [FeedbackItem("same", 0, 3.0)])
    assert result.status == "stored" and result.predictions == (LoggedPrediction("champ:1", "champion", 2.0),)
    with open_window(sqlite_in(tmp_path), "housing", None) as window:
        (joined,) = feedback_window.rows(window)
    assert joined[["prediction", "actual"]].values.tolist() == [[2.0, 3.0]]


def test_a_deleted_log_is_a_clear_failure_and_never_blocks_the_writers_reopen(tmp_path: Path) -> None:
    """The feedback store holds nothing between calls: a writer reopens a deleted database at once (it waits for
    every pin on the old file), and feedback meanwhile fails with a clear error instead of creating a new file."""
    from prediction_log.feedback import FeedbackUnavailable
    from prediction_log.files import Database

    write(tmp_path, [PredictionRow("r", "housing", "m", {}, 1.0, 1.0)])
    store = open_feedback_store(sqlite_in(tmp_path))
    assert store.record("housing", [FeedbackItem("r", 0, 2.0)])[0].status == "stored"
    writer = Database(tmp_path / "predictions.db")
    writer.open()
    (tmp_path / "predictions.db").unlink()
    with pytest.raises(FeedbackUnavailable, match="does not exist"):
        store.record("housing", [FeedbackItem("r", 0, 2.0)])
    assert not (tmp_path / "predictions.db").exists()  # feedback never creates the database
    assert writer.moved() is not None and writer.reopen(wait_s=0.5), "a pin on the deleted file held the reopen"
    writer.close()
    assert [r.status for r in store.record("housing", [FeedbackItem("r", 0, 2.0)])] == ["unknown"]  # a new log


def test_the_monitor_reads_a_version_4_log_without_migrating_it(tmp_path: Path) -> None:
    """An archived log no current server has opened: every row is the champion's, no feedback yet, and the file
    stays at version 4 (the monitor opens it read-only)."""
    from monitoring import feedback_window
    from monitoring.logquery import open_window
    from monitoring.report import summarise
    from monitoring.sample import draw

    db = sqlite3.connect(tmp_path / "predictions.db", isolation_level=None)
    create_version_4_log(db.execute, "sqlite")
    db.close()
    housing = summarise(sqlite_in(tmp_path))["housing"]
    assert (housing["requests"], housing["predictions"], housing["arms"]) == (2, 4, {"champion": 4})
    with open_window(sqlite_in(tmp_path), "housing", None) as window:
        sample = draw(window, 10, seed=1, window_rows=4)
        assert list(feedback_window.rows(window)) == [] and feedback_window.arm_counts(window) == {}
    assert sorted(sample.rows["request_id"]) == ["batch", "batch", "batch", "old"] and sample.whole
    assert sorted(sample.rows["prediction"]) == [1.5, 10.0, 11.0, 12.0]
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 4
