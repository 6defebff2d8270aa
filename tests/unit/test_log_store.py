"""Where the log lives, its schema versions, retention and the JSON-lines rotation, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prediction_log import location as locations
from prediction_log.location import LocationError, parse_url, resolve
from prediction_log.prune import main as prune_main
from prediction_log.schema import MIGRATIONS, SCHEMA_VERSION, migrate_sqlite
from prediction_log.store import ErrorRow, ExplanationRow, PredictionRow
from prediction_log.writer import PredictionLog


def test_the_url_selects_the_store_and_the_password_is_never_shown(tmp_path: Path) -> None:
    sqlite = parse_url(f"sqlite:///{tmp_path}/logs/predictions.db")
    assert sqlite.kind == "sqlite" and sqlite.path == tmp_path / "logs" / "predictions.db"
    assert sqlite.jsonl_path == tmp_path / "logs" / "predictions.jsonl"
    pg = parse_url("postgresql://writer@db.internal:5433/predictions", password="s3cr3t/+")
    assert pg.kind == "postgresql" and "s3cr3t" in (pg.conninfo or "")
    assert str(pg) == "postgresql://writer@db.internal:5433/predictions"
    in_url = parse_url("postgresql://writer:hunter2@db:5432/log")
    assert "hunter2" not in str(in_url) and "hunter2" in (in_url.conninfo or "")
    for bad in ("mysql://x/y", "sqlite://", "postgresql://host-only", "predictions.db"):
        with pytest.raises(LocationError):
            parse_url(bad)


def test_one_default_for_everyone_that_does_not_depend_on_the_working_directory(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    default = resolve(env)
    assert default.path == tmp_path / "data" / "prediction-service" / "prediction-log" / "predictions.db"
    monkeypatch.chdir(tmp_path)
    assert resolve(env) == default
    assert resolve({**env, "PREDICTION_LOG_DIR": str(tmp_path / "dir")}).path == tmp_path / "dir" / "predictions.db"
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    url = resolve({"PREDICTION_LOG_URL": "postgresql://u@h/db", "PREDICTION_LOG_PASSWORD_FILE": str(secret),
                   "PREDICTION_LOG_DIR": str(tmp_path)})
    assert url.kind == "postgresql" and ":from-a-file@" in (url.conninfo or "")
    assert locations.default_directory({}).parts[-2:] == ("prediction-service", "prediction-log")


def test_migrations_bring_an_old_log_to_the_current_version_once(tmp_path: Path) -> None:
    """A log made before versioning (the tables alone) is version 1; migrating again changes nothing."""
    db = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, request_id TEXT "
               "NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL, inputs TEXT NOT NULL, prediction TEXT NOT NULL, "
               "latency_ms REAL NOT NULL)")
    db.execute("INSERT INTO predictions (ts, request_id, task, model, inputs, prediction, latency_ms) "
               "VALUES ('2020-01-01', 'old', 'iris', 'm', '{}', '1', 1.0)")
    # every migration, in order (versions may have gaps while branches that add them are merged)
    assert migrate_sqlite(db) == sorted(MIGRATIONS)
    assert migrate_sqlite(db) == []
    assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT request_id FROM predictions").fetchall() == [("old",)]
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"predictions_task_ts", "predictions_request_id", "explanations_task_ts"} <= indexes
    assert db.execute("SELECT COUNT(*) FROM explanations").fetchone()[0] == 0


def _write(log: PredictionLog, rows: list) -> None:
    asyncio.run(log.write(rows))


def _aged(request_id: str, days: float) -> PredictionRow:
    ts = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
    return PredictionRow(request_id, "iris", "m", {"x": 1}, {"species": "setosa"}, 1.0, ts)


def test_prune_deletes_old_rows_in_batches_and_keeps_the_rest(tmp_path: Path, capsys) -> None:
    log = PredictionLog(tmp_path)
    log.start()
    _write(log, [_aged(f"old{i}", 40) for i in range(25)] + [_aged(f"new{i}", 1) for i in range(5)]
           + [ErrorRow("bad", "iris", 400, {}, 1.0, _aged("", 40).ts)]
           + [ExplanationRow(f"why{i}", "iris", "m", {"x": 1}, {"base_value": {}}, 1.0, _aged("", 40 - 39 * i).ts)
              for i in range(2)])
    assert prune_main(["--log-dir", str(tmp_path), "--days", "30", "--batch", "7"]) == 0
    assert "deleted 27 rows" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        assert {r[0] for r in db.execute("SELECT request_id FROM predictions")} == {f"new{i}" for i in range(5)}
        assert db.execute("SELECT COUNT(*) FROM request_errors").fetchone()[0] == 0
        assert [r[0] for r in db.execute("SELECT request_id FROM explanations")] == ["why1"]
    _write(log, [_aged("after", 0)])  # the service's writer is unaffected
    log.close()
    assert prune_main(["--log-dir", str(tmp_path / "nowhere"), "--days", "1"]) == 2


def test_the_service_retains_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prediction_log import writer

    monkeypatch.setattr(writer, "PRUNE_BATCH", 4)
    log = PredictionLog(tmp_path, retention_days=30)
    log.start()
    _write(log, [_aged(f"old{i}", 31) for i in range(10)] + [_aged("fresh", 0)])
    deadline = datetime.now() + timedelta(seconds=10)
    while datetime.now() < deadline:
        with sqlite3.connect(tmp_path / "predictions.db") as db:
            left = [r[0] for r in db.execute("SELECT request_id FROM predictions")]
        if left == ["fresh"]:
            break
    log.close()
    assert left == ["fresh"]


def test_the_json_lines_file_is_rotated_by_size_and_no_line_is_lost(tmp_path: Path) -> None:
    first = PredictionLog(tmp_path, jsonl_max_bytes=2_000, jsonl_backups=2)
    second = PredictionLog(tmp_path, jsonl_max_bytes=2_000, jsonl_backups=2)  # another worker on the same files
    for log in (first, second):
        log.start()
    for i in range(60):
        _write(first if i % 2 else second, [PredictionRow(f"r{i}", "iris", "m", {"i": i}, 1.0, 1.0)])
    for log in (first, second):
        log.close()
    files = sorted(tmp_path.glob("predictions.jsonl*"))
    assert [f.name for f in files] == ["predictions.jsonl", "predictions.jsonl.1", "predictions.jsonl.2"]
    assert all(f.stat().st_size < 2_000 + 200 for f in files)
    kept = [line for f in files for line in f.read_text().splitlines()]
    assert len(kept) == len(set(kept))  # nothing written twice
    ids = sorted(int(json.loads(line)["request_id"][1:]) for line in kept)
    assert ids == list(range(60 - len(ids), 60)), "the newest lines are all there, in the kept files"
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 60


def test_retention_batches_follow_their_time_budget_and_leave_the_lock_to_the_writers() -> None:
    from prediction_log.batches import DUTY, BatchSize

    size = BatchSize(cap=1000, rows=100, budget_s=0.005)
    for took, expected in ((0.001, 200), (0.001, 400), (0.004, 400), (0.003, 400), (0.02, 200), (0.006, 100),
                           (0.0001, 200), (0.0001, 400), (0.0001, 800), (0.0001, 1000), (0.0001, 1000)):
        size.took(took)
        assert size.rows == expected, (took, size.rows)
    for _ in range(20):
        size.took(1.0)
    assert size.rows == 1  # never nothing
    assert BatchSize.pause_s(0.005) == pytest.approx(0.005 * (1 - DUTY) / DUTY)
    assert BatchSize.pause_s(0.0001, floor_s=0.01) == 0.01
    assert BatchSize(cap=4).rows == 4  # the cap bounds the first batch too


def test_only_a_store_that_locks_its_writers_out_sizes_retention_by_time() -> None:
    """SQLite's delete holds the write lock: a 5 ms budget and 9/10 of the time left to the writers. PostgreSQL's
    locks only the deleted rows: whole batches (a budget would shrink them to one row: a commit alone can take
    longer), and the pause as long as the batch."""
    from prediction_log.batches import BUDGET_S, BatchSize
    from prediction_log.postgres_store import PostgresStore
    from prediction_log.sqlite_store import SQLiteStore

    assert (SQLiteStore.PRUNE_BUDGET_S, SQLiteStore.PRUNE_DUTY) == (BUDGET_S, 0.1)
    assert PostgresStore.PRUNE_BUDGET_S is None and PostgresStore.PRUNE_DUTY == 0.5
    size = BatchSize(cap=5000, budget_s=PostgresStore.PRUNE_BUDGET_S)
    size.took(2.0)
    assert size.rows == 5000
    assert BatchSize.pause_s(0.3, duty=PostgresStore.PRUNE_DUTY) == pytest.approx(0.3)
