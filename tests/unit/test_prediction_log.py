"""The prediction log's writer, without a server: encoding, group acknowledgement, cancelled waiters."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from prediction_log.store import ErrorRow, PredictionRow, encode_errors, encode_predictions
from prediction_log.writer import PredictionLog


def test_json_lines_are_what_json_dumps_of_the_row_gives() -> None:
    rows = [PredictionRow("r1", "housing", "housing-regressor:x", {"median_income": 8.3, "ocean_proximity": "NEAR BAY"},
                          452_600.0, 3.25, "2026-01-01T00:00:00+00:00")]
    rows += [PredictionRow("batch", "housing", "housing-regressor:x", {"households": i, "note": 'quote " é'},
                           100.0 + i, 7.0) for i in range(3)]
    rows += [PredictionRow("odd", "housing", "m", {}, value, 1.0) for value in (float("nan"), float("inf"), -0.0, 1e-7)]
    rows.append(PredictionRow("i1", "iris", "iris-classifier:y", {"petal_width": 0.2},
                              {"species": "setosa", "probabilities": {"setosa": 0.97}}, 1.5))
    values, lines = encode_predictions(rows, "2026-01-02T00:00:00+00:00")
    for row, value, line in zip(rows, values, lines, strict=True):
        ts = row.ts or "2026-01-02T00:00:00+00:00"
        assert line == json.dumps({"ts": ts, "request_id": row.request_id, "task": row.task, "model": row.model,
                                   "inputs": row.inputs, "prediction": row.prediction, "latency_ms": row.latency_ms})
        assert value == (ts, row.request_id, row.task, row.model, json.dumps(row.inputs), json.dumps(row.prediction),
                         row.latency_ms)
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
