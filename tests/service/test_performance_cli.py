"""`python -m monitoring.performance` as a subprocess over a seeded feedback stream written through the real writer
and FeedbackStore into a real SQLite log: shadow pairs and A/B arms, challenger better, equal or worse, both kinds of
task, no feedback yet, too few pairs, no log. A few seconds in all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from prediction_log.feedback import FeedbackItem, open_feedback_store
from prediction_log.location import sqlite_in
from prediction_log.store import PredictionRow
from prediction_log.writer import PredictionLog

ROOT = Path(__file__).resolve().parents[2]
SPECIES = ("setosa", "versicolor", "virginica")

def _ts(i: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=600 - i)).isoformat(timespec="microseconds")


def simulate(directory: Path, task: str, mode: str, quality: str, n: int = 200, seed: int = 0,
             feedback: bool = True) -> None:
    """`n` requests of one record each in `mode` "shadow" (champion answers, challenger shadows) or "ab" (alternate
    arms), whose true values make the challenger "better", "equal" or "worse" than the champion."""
    rng = np.random.default_rng(seed)
    rows, items = [], []
    for i in range(n):
        request_id = f"{mode}-{i}"
        if task == "housing":
            actual = float(rng.uniform(50_000, 500_000))
            good, bad = actual + rng.normal(0, 2_000), actual + rng.normal(0, 40_000)
            offset = float(rng.normal(0, 20_000))
            champion, challenger = {"better": (bad, good), "worse": (good, bad),
                                    "equal": (actual + offset, actual - offset)}[quality]
            value: object = actual
        else:
            value = SPECIES[i % 3]
            wrong = SPECIES[(i + 1) % 3]
            right_often = value if rng.random() < 0.95 else wrong
            right_rarely = value if rng.random() < 0.5 else wrong
            champion, challenger = {"better": (right_rarely, right_often), "worse": (right_often, right_rarely),
                                    "equal": (right_often, right_often)}[quality]
            champion, challenger = ({"species": label, "probabilities": {label: 0.9}}
                                    for label in (champion, challenger))
        if mode == "shadow":
            rows += [PredictionRow(request_id, task, f"{task}:champ", {}, champion, 1.0, _ts(i), "champion", 0),
                     PredictionRow(request_id, task, f"{task}:chall", {}, challenger, 1.0, _ts(i), "shadow", 0)]
        else:
            arm, model, prediction = (("champion", "champ", champion) if i % 2 else ("challenger", "chall", challenger))
            rows.append(PredictionRow(request_id, task, f"{task}:{model}", {}, prediction, 1.0, _ts(i), arm, 0))
        items.append(FeedbackItem(request_id, 0, value))
    log = PredictionLog(directory)
    log.start()
    asyncio.run(log.write(rows))
    log.close()
    if feedback:
        store = open_feedback_store(sqlite_in(directory))
        results = store.record(task, items)
        store.close()
        assert {r.status for r in results} == {"stored"}


def run_cli(directory: Path, task: str, out: Path) -> tuple[int, dict, str]:
    done = subprocess.run([sys.executable, "-m", "monitoring.performance", "--task", task, "--since", "24h",
                           "--log-dir", str(directory), "--out", str(out), "--params", str(ROOT / "params.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 5, 6), done.stderr
    return done.returncode, json.loads((out / f"{task}-performance.json").read_text()), done.stdout


@pytest.mark.parametrize(("task", "mode", "quality", "code", "verdict", "used"), [
    ("housing", "shadow", "better", 5, "challenger better", "paired"),
    ("housing", "shadow", "equal", 0, "no significant difference", "paired"),
    ("housing", "shadow", "worse", 6, "challenger worse", "paired"),
    ("housing", "ab", "better", 5, "challenger better", "unpaired"),
    ("iris", "shadow", "better", 5, "challenger better", "paired"),
    ("iris", "ab", "worse", 6, "challenger worse", "unpaired"),
])
def test_the_cli_judges_a_simulated_feedback_stream(tmp_path: Path, task: str, mode: str, quality: str, code: int,
                                                    verdict: str, used: str) -> None:
    simulate(tmp_path / "log", task, mode, quality)
    exit_code, summary, stdout = run_cli(tmp_path / "log", task, tmp_path / "reports")
    assert (exit_code, summary["verdict"], summary["comparison"]["used"]) == (code, verdict, used), stdout
    assert summary["exit_code"] == code and verdict in stdout
    arms = {"champion", "shadow"} if mode == "shadow" else {"champion", "challenger"}
    assert set(summary["arms"]) == arms and sum(a["n"] for a in summary["arms"].values()) == summary["feedback_rows"]
    assert {m["model"] for m in summary["models"]} == {f"{task}:champ", f"{task}:chall"}
    assert all(len(buckets) == 10 for buckets in summary["over_time"].values())
    measure = "rmse" if task == "housing" else "accuracy"
    assert all(measure in a for a in summary["arms"].values())
    text = (tmp_path / "reports" / f"{task}-performance.json").read_text()
    assert list(json.loads(text)) == sorted(json.loads(text)), "keys in a deterministic (sorted) order"


def test_no_feedback_yet_is_exit_0_and_says_so(tmp_path: Path) -> None:
    simulate(tmp_path / "log", "housing", "shadow", "better", n=20, feedback=False)
    exit_code, summary, stdout = run_cli(tmp_path / "log", "housing", tmp_path / "reports")
    assert (exit_code, summary["verdict"], summary["feedback_rows"]) == (0, "no feedback", 0)
    assert "no housing feedback yet" in stdout


def test_too_few_pairs_are_not_judged_and_no_log_is_exit_2(tmp_path: Path) -> None:
    simulate(tmp_path / "log", "housing", "shadow", "better", n=30)
    exit_code, summary, stdout = run_cli(tmp_path / "log", "housing", tmp_path / "reports")
    assert (exit_code, summary["verdict"]) == (0, "not judged") and "at least 100" in stdout
    assert summary["comparison"]["paired"]["verdict"] == "challenger better"  # reported, but not a verdict
    missing = subprocess.run([sys.executable, "-m", "monitoring.performance", "--task", "housing", "--log-dir",
                              str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no prediction log" in missing.stderr
