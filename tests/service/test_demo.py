"""`make demo`: the test split sent to a live server at a steady rate, with feedback, so the monitoring tools judge."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer

RATE, DURATION = 25, 13  # 325 predictions per task: more than monitoring.report.min_rows (300)


@pytest.fixture
def server(built_repo: PipelineRepo, tmp_path: Path) -> Iterator[LiveServer]:
    """The development server on the session's served set, logging to its own SQLite log."""
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs")
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def test_make_demo_feeds_report_and_monitor(repo: PipelineRepo, server: LiveServer) -> None:
    log_env = {"PREDICTION_LOG_DIR": str(server.log_dir)}
    demo = repo.make("-o", "install", "demo", f"PORT={server.port}", f"RATE={RATE}", f"DURATION={DURATION}",
                     check=False, env=log_env)

    assert demo.returncode == 0, demo.output[-3000:]
    tasks = repo.params()["tasks"]
    count = RATE * DURATION
    assert f"demo: done: {'; '.join(f'{t} {count} predictions, {count} feedback' for t in tasks)}" in demo.stdout
    with sqlite3.connect(server.log_dir / "predictions.db") as db:
        for task in tasks:
            stamps = [datetime.fromisoformat(ts) for (ts,) in
                      db.execute("SELECT ts FROM predictions WHERE task = ? ORDER BY ts", (task,))]
            assert len(stamps) == count
            # a steady rate, not a burst: the rows span the run (the bound only says "not all at once")
            assert (stamps[-1] - stamps[0]).total_seconds() > 0.7 * DURATION
            records = db.execute("SELECT p.inputs, f.actual FROM feedback f JOIN predictions p "
                                 "ON p.request_id = f.request_id AND p.position = f.position WHERE f.task = ?",
                                 (task,)).fetchall()
            assert len(records) == count
        # the first housing record sent is the test split's first row, its true value the feedback
        first_input, first_actual = db.execute(
            "SELECT p.inputs, f.actual FROM predictions p JOIN feedback f ON p.request_id = f.request_id "
            "WHERE p.task = ? ORDER BY p.id LIMIT 1", (tasks[0],)).fetchone()
    target = repo.declaration(tasks[0])["target"]["name"]
    split = pd.read_csv(repo.path / "data" / "prepared" / tasks[0] / "test.csv")
    assert json.loads(first_actual) == split[target].iloc[0]
    sent = json.loads(first_input)
    assert all(sent[field] == split[field].iloc[0] for field in sent if isinstance(sent[field], float))

    report = repo.make("-o", "install", "report", env=log_env)
    for task in tasks:  # every request answered: no errors in the report either
        assert f"{task}: {count} requests, {count} predictions, error rate 0.00%" in report.stdout, report.stdout
    monitor = repo.make("-o", "install", "monitor", f"TASK={tasks[0]}", "SINCE=1h",
                        f"MONITOR_OUT={repo.path / 'reports'}", check=False, env=log_env)
    assert monitor.returncode in (0, 1, 4), monitor.output[-3000:]  # a verdict, not "not enough predictions"
    assert "not enough predictions" not in monitor.output


def test_demo_without_a_server_says_how_to_start_one(repo: PipelineRepo) -> None:
    from scripts.server_process import free_port

    result = repo.make("-o", "install", "demo", f"PORT={free_port()}", "DURATION=1", check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "no server answers at http://127.0.0.1:" in result.stderr and "make serve" in result.stderr
