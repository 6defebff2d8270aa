"""`make report`: the log summary counts what the log holds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from monitoring.logquery import parse_since
from monitoring.report import main as report_main
from monitoring.report import render, summarise
from prediction_log.store import ErrorRow, PredictionRow
from prediction_log.writer import PredictionLog


def _fill(directory: Path) -> None:
    log = PredictionLog(directory)
    log.start()
    rows = [PredictionRow(f"r{i}", "housing", "housing-regressor:x", {"median_income": i}, 100_000.0 * i, float(i))
            for i in range(1, 11)]
    rows += [PredictionRow("batch", "housing", "housing-regressor:x", {}, 50_000.0, 30.0, position=position)
             for position in range(5)]  # one predict_batch request: its records share the latency
    rows.append(PredictionRow("i1", "iris", "iris-classifier:y", {}, {"species": "setosa", "probabilities": {}}, 2.0))
    asyncio.run(log.write([*rows, ErrorRow("bad", "housing", 400, {"error": "x"}, 1.0)]))
    log.close()


def test_summary_counts_requests_errors_and_latency(tmp_path: Path) -> None:
    _fill(tmp_path)
    summary = summarise(tmp_path)
    housing = summary["housing"]
    assert housing["predictions"] == 15
    assert housing["requests"] == 12  # 10 singles + 1 batch + 1 rejected
    assert housing["errors"] == {"400": 1}
    assert housing["error_rate"] == pytest.approx(1 / 12, abs=1e-4)
    assert housing["latency_ms"]["p50"] == pytest.approx(6.0)  # median of 1..10 and 30
    assert summary["iris"]["prediction"] == {"setosa": 1}


def test_since_filters_old_rows(tmp_path: Path) -> None:
    _fill(tmp_path)
    future = "2999-01-01T00:00:00+00:00"
    assert summarise(tmp_path, future) == {}
    assert summarise(tmp_path, parse_since("1h"))["housing"]["predictions"] == 15


def test_cli_prints_json_and_fails_clearly_without_a_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fill(tmp_path)
    report_main(["--log-dir", str(tmp_path), "--json"])
    assert json.loads(capsys.readouterr().out)["iris"]["predictions"] == 1
    with pytest.raises(SystemExit) as missing:
        report_main(["--log-dir", str(tmp_path / "none")])
    assert "no prediction log at" in str(missing.value.code)


def test_shadow_rows_are_not_traffic_and_answered_predictions_are_counted_per_arm(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.start()
    rows = [PredictionRow(f"s{i}", "housing", model, {}, 1.0, 1.0, "", arm, 0)
            for i in range(4) for model, arm in (("champ:1", "champion"), ("chall:2", "shadow"))]
    rows += [PredictionRow("ab", "housing", "chall:2", {}, 2.0, 1.0, "", "challenger", 0)]
    asyncio.run(log.write(rows))
    log.close()
    housing = summarise(tmp_path)["housing"]
    assert (housing["requests"], housing["predictions"]) == (5, 5)
    assert housing["arms"] == {"challenger": 1, "champion": 4}
    assert "predictions per arm: challenger 1, champion 4" in render(summarise(tmp_path))
