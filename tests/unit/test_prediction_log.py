"""The prediction log's writer, without a server: encoding, group acknowledgement, cancelled waiters, files
deleted under it, and a group that cannot be written (a file size limit stands in for a full disk)."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prediction_log.sample_key import sample_key
from prediction_log.store import ErrorRow, PredictionRow, encode_errors, encode_predictions
from prediction_log.writer import LogUnavailable, PredictionLog


def test_json_lines_are_what_json_dumps_of_the_row_gives() -> None:
    rows = [PredictionRow("r1", "housing", "housing-regressor:x", {"median_income": 8.3, "ocean_proximity": "NEAR BAY"},
                          452_600.0, 3.25, "2026-01-01T00:00:00+00:00")]
    rows += [PredictionRow("batch", "housing", "housing-regressor:x", {"households": i, "note": 'quote " é'},
                           100.0 + i, 7.0) for i in range(3)]
    rows += [PredictionRow("odd", "housing", "m", {}, value, 1.0) for value in (float("nan"), float("inf"), -0.0, 1e-7)]
    rows.append(PredictionRow("i1", "iris", "iris-classifier:y", {"petal_width": 0.2},
                              {"species": "setosa", "probabilities": {"setosa": 0.97}}, 1.5))
    # a shadowed batch: the champion's rows, then the challenger's under the same id and positions
    rows += [PredictionRow("ab", "housing", model, {"i": i}, 1.0 + i, 2.0, "", arm, i)
             for model, arm in (("champ:1", "champion"), ("chall:2", "shadow")) for i in range(2)]
    values, lines = encode_predictions(rows, "2026-01-02T00:00:00+00:00")
    for row, value, line in zip(rows, values, lines, strict=True):
        ts = row.ts or "2026-01-02T00:00:00+00:00"
        assert line == json.dumps({"ts": ts, "request_id": row.request_id, "task": row.task, "model": row.model,
                                   "arm": row.arm, "position": row.position, "inputs": row.inputs,
                                   "prediction": row.prediction, "latency_ms": row.latency_ms})
        assert value == (ts, row.request_id, row.task, row.model, json.dumps(row.inputs), json.dumps(row.prediction),
                         row.latency_ms, row.arm, row.position,
                         sample_key(row.task, row.request_id, row.position, row.arm, ts))
    assert [json.loads(line)["arm"] for line in lines[-4:]] == ["champion", "champion", "shadow", "shadow"]
    error_values, error_lines = encode_errors([ErrorRow("e", "iris", 400, {"error": "x"}, 1.0)], "t")
    assert json.loads(error_lines[0])["status"] == 400 and error_values[0][3] == 400


def test_concurrent_writers_are_each_acknowledged_after_their_rows_are_committed(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.start()

    async def main() -> None:
        await asyncio.gather(*(log.write([PredictionRow(f"r{i}", "housing", "m", {"i": i}, float(i), 1.0)])
                               for i in range(200)))
        with sqlite3.connect(tmp_path / "predictions.db") as db:
            assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 200

    asyncio.run(main())
    log.close()
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 200


def test_a_waiter_cancelled_meanwhile_does_not_stop_the_writer(tmp_path: Path) -> None:
    """A request cancelled (e.g. by the traffic timeout) while it waits must not kill the writer thread."""
    log = PredictionLog(tmp_path)
    log.start()

    async def main() -> None:
        waiter = asyncio.ensure_future(log.write([PredictionRow("gone", "housing", "m", {}, 1.0, 1.0)]))
        await asyncio.sleep(0)
        waiter.cancel()
        await log.write([PredictionRow("next", "housing", "m", {}, 2.0, 1.0)])

    asyncio.run(main())
    assert log.running
    log.close()
    with sqlite3.connect(tmp_path / "predictions.db") as db:
        assert {r[0] for r in db.execute("SELECT request_id FROM predictions")} == {"gone", "next"}


def _ids(db_path: Path, table: str = "predictions") -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {r[0] for r in db.execute(f"SELECT request_id FROM {table}")}


def test_a_deleted_database_is_reopened_and_no_later_row_is_lost(tmp_path: Path) -> None:
    reopened: list[tuple[str, str]] = []
    log = PredictionLog(tmp_path, on_reopen=lambda file, reason: reopened.append((file, reason)))
    log.start()

    async def write(prefix: str, n: int) -> None:
        await asyncio.gather(*(log.write([PredictionRow(f"{prefix}{i}", "housing", "m", {}, 1.0, 1.0)])
                               for i in range(n)))

    asyncio.run(write("before", 20))
    (tmp_path / "predictions.db").unlink()
    asyncio.run(write("after", 30))
    (tmp_path / "predictions.jsonl").unlink()
    asyncio.run(write("again", 5))
    log.close()
    assert _ids(tmp_path / "predictions.db") == {f"after{i}" for i in range(30)} | {f"again{i}" for i in range(5)}
    assert reopened == [("database", "deleted"), ("jsonl", "deleted")]
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 5


@pytest.fixture
def file_size_limit() -> Iterator[Callable[[int], None]]:
    """Limit the size of any file this process writes (a short write, then EFBIG: a disk that fills up)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(size: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)


def test_a_group_that_cannot_be_written_leaves_no_row_no_partial_line_and_the_real_error(
        tmp_path: Path, file_size_limit: Callable[[int], None], caplog: pytest.LogCaptureFixture) -> None:
    health: list[bool] = []
    log = PredictionLog(tmp_path, on_health=health.append)
    log.start()
    jsonl = tmp_path / "predictions.jsonl"

    async def write(prefix: str, n: int, size: int = 10) -> None:
        await asyncio.gather(*(log.write([PredictionRow(f"{prefix}{i}", "housing", "m", {"x": "y" * size}, 1.0, 1.0)])
                               for i in range(n)))

    asyncio.run(write("ok", 3))
    before = jsonl.read_bytes()
    file_size_limit(len(before) + 2000)  # room for part of the next group's lines only
    with pytest.raises(LogUnavailable) as failure:
        asyncio.run(write("big", 50, size=200))
    assert "File too large" in str(failure.value) or "disk is full" in str(failure.value)
    assert "cannot rollback" not in str(failure.value) and "cannot rollback" not in caplog.text
    assert "rows not logged" in caplog.text
    assert jsonl.read_bytes() == before, "a failed group left (part of) its lines"
    assert not log.healthy and health == [False]
    file_size_limit(resource.RLIM_INFINITY)
    asyncio.run(write("later", 4))
    log.close()
    assert _ids(tmp_path / "predictions.db") == {"ok0", "ok1", "ok2", "later0", "later1", "later2", "later3"}
    assert [json.loads(line)["request_id"] for line in jsonl.read_text().splitlines()] == \
        ["ok0", "ok1", "ok2", "later0", "later1", "later2", "later3"]
    assert health == [False, True]


def test_rows_written_later_ride_with_the_next_group_or_the_idle_tick_and_survive_close(tmp_path: Path) -> None:
    """`write_later` (shadow rows): no commit of its own. They land in the same transaction as the next answered
    rows, else within the writer's idle tick, and `close()` commits whatever still waits."""
    from prediction_log.writer import IDLE_CHECK_S

    log = PredictionLog(tmp_path)
    log.start()
    log.write_later([PredictionRow("shadowed", "housing", "chall", {}, 1.0, 1.0, arm="shadow")])
    asyncio.run(log.write([PredictionRow("answered", "housing", "champ", {}, 2.0, 1.0)]))
    with sqlite3.connect(tmp_path / "predictions.db") as db:  # ids in commit order: the later row went first
        assert db.execute("SELECT request_id, arm FROM predictions ORDER BY id").fetchall() == [
            ("shadowed", "shadow"), ("answered", "champion")]
    log.write_later([PredictionRow("idle", "housing", "chall", {}, 3.0, 1.0, arm="shadow")])
    deadline = time.monotonic() + 3 * IDLE_CHECK_S
    while "idle" not in _ids(tmp_path / "predictions.db"):
        assert time.monotonic() < deadline, "a later row waited past the idle tick"
        time.sleep(0.05)
    log.write_later([PredictionRow("at-close", "housing", "chall", {}, 4.0, 1.0, arm="shadow")])
    log.close()
    assert _ids(tmp_path / "predictions.db") == {"shadowed", "answered", "idle", "at-close"}
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 4


def test_rows_written_later_that_cannot_be_written_are_reported(
        tmp_path: Path, file_size_limit: Callable[[int], None]) -> None:
    log = PredictionLog(tmp_path)
    log.start()
    asyncio.run(log.write([PredictionRow("ok", "housing", "m", {}, 1.0, 1.0)]))
    failures: list[LogUnavailable] = []
    file_size_limit((tmp_path / "predictions.jsonl").stat().st_size + 100)
    log.write_later([PredictionRow("big", "housing", "m", {"x": "y" * 500}, 1.0, 1.0, arm="shadow")],
                    failures.append)
    with pytest.raises(LogUnavailable):  # the answered row of the same group fails too, and says so
        asyncio.run(log.write([PredictionRow("next", "housing", "m", {"x": "y" * 500}, 1.0, 1.0)]))
    file_size_limit(resource.RLIM_INFINITY)
    log.close()
    assert len(failures) == 1 and _ids(tmp_path / "predictions.db") == {"ok"}
