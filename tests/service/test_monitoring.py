"""Monitoring: the reference profile, `make monitor` (drift verdicts, exit codes, report), live drift on /metrics.

Logs are written with the real PredictionLog (or by a real server) from rows of the session's
training split, predicted by the session's champions: traffic from the training distribution
must not drift; the same traffic with median_income x 1.5 must flag that feature and no other.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from bento_service.live_drift import DriftWindow, gauge_publisher
from monitoring.monitor import main as monitor
from prediction_log.store import ErrorRow, PredictionRow
from prediction_log.writer import PredictionLog
from tests.support.browser import chromium, open_page
from tests.support.dvc_repo import PROJECT_ROOT, PipelineRepo
from tests.support.live_server import LiveServer
from tests.support.traffic import send_housing, traffic

ARTIFACTS = PROJECT_ROOT / ".artifacts"


# -- helpers --------------------------------------------------------------------------------------

def logged_predictions(repo: PipelineRepo, task: str, records: list[dict[str, Any]]) -> list[Any]:
    """What the service would log for these records, from the session's champion."""
    model = joblib.load(repo.path / f"models/{task}/champion.joblib")
    frame = pd.DataFrame(records)
    if task == "housing":
        return [float(v) for v in model.predict(frame)]
    classes = [str(c) for c in model.classes_]
    return [{"species": classes[int(np.argmax(p))], "probabilities": dict(zip(classes, map(float, p), strict=True))}
            for p in model.predict_proba(frame)]


def write_log(log_dir: Path, task: str, model: str, records: list[dict[str, Any]], predictions: list[Any],
              errors: int = 0) -> None:
    """Rows one request each, ten seconds apart and ending now, plus `errors` rejected requests."""
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    rows: list[PredictionRow | ErrorRow] = [
        PredictionRow(f"r{i}", task, model, record, prediction, float(rng.gamma(2.0, 3.0)),
                      (now - timedelta(seconds=10 * (len(records) - i))).isoformat())
        for i, (record, prediction) in enumerate(zip(records, predictions, strict=True))]
    rows += [ErrorRow(f"e{i}", task, 400, {"error": "invalid request"}, 0.5,
                      (now - timedelta(seconds=37 * i)).isoformat()) for i in range(errors)]
    log = PredictionLog(log_dir)
    log.start()
    asyncio.run(log.write(rows))
    log.close()


def model_tag(repo: PipelineRepo, task: str) -> str:
    return repo.json(f"models/{task}/bento_tags.json")["champion"]


def run_monitor(repo: PipelineRepo, log_dir: Path, out: Path, task: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = monitor(["--task", task, "--log-dir", str(log_dir), "--out", str(out),
                    "--params", str(repo.path / "params.yaml"), *extra])
    summary_path = out / f"{task}-monitor.json"
    return code, json.loads(summary_path.read_text()) if summary_path.exists() else {}


def run_cli(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitoring.monitor", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


# -- the reference profile -------------------------------------------------------------------------

def test_profile_travels_with_the_model_and_matches_the_live_binning(built_repo: PipelineRepo) -> None:
    import bentoml

    profile = built_repo.json("models/housing/reference.json")
    packaged = bentoml.models.get(model_tag(built_repo, "housing")).custom_objects["reference"]
    assert packaged == profile

    train = pd.read_csv(built_repo.path / "data/prepared/housing/train.csv").drop(columns="median_house_value")
    assert profile["training_rows"] == len(train)
    assert set(profile["features"]) == set(train.columns)
    assert len(profile["sample"]["prediction"]) == min(len(train), built_repo.params()["monitoring"]["reference"]
                                                       ["sample_rows"])
    # The service's binning of the training rows reproduces the stage's proportions: PSI ~ 0.
    records = train.to_dict(orient="records")  # NaN total_bedrooms go to the missing bin
    window = DriftWindow(profile, window=len(records))
    window.add(records, logged_predictions(built_repo, "housing", train.to_dict(orient="records")))
    features, prediction, _missing = window.scores()
    assert max(features.values()) < 1e-3 and prediction < 1e-3, (features, prediction)
    assert profile["features"]["total_bedrooms"]["proportions"][-1] > 0  # the generated data has gaps


def test_live_drift_judges_the_values_sent_and_reports_missing_ones_apart(built_repo: PipelineRepo) -> None:
    """Training rows without the optional ocean_proximity: no drift anywhere (ocean_proximity not judged),
    and its missing share is 1.0 on its own gauge, while a shifted feature is still caught."""
    profile = built_repo.json("models/housing/reference.json")
    train = pd.read_csv(built_repo.path / "data/prepared/housing/train.csv").drop(columns="median_house_value")
    records = train.to_dict(orient="records")
    for record in records:
        record["ocean_proximity"] = None
    predictions = logged_predictions(built_repo, "housing", train.to_dict(orient="records"))
    published: list = []
    window = DriftWindow(profile, published.append, window=len(records), every=len(records))
    window.add(records, predictions)
    scores = published[-1]
    assert scores.missing["ocean_proximity"] == 1.0
    assert 0 < scores.missing["total_bedrooms"] < 0.05  # the data's own gaps, as in training
    assert np.isnan(scores.features["ocean_proximity"])
    judged = {name: score for name, score in scores.features.items() if name != "ocean_proximity"}
    assert max(judged.values()) < 1e-3, judged

    for record in records:
        record["median_income"] *= 1.5
    window.add(records, predictions)
    assert published[-1].features["median_income"] > built_repo.params()["monitoring"]["live"]["threshold"]


# -- make monitor ----------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["housing", "iris"])
def test_training_distribution_does_not_drift(built_repo: PipelineRepo, tmp_path: Path, task: str) -> None:
    records = traffic(built_repo, task, 600, seed=1)
    write_log(tmp_path / "logs", task, model_tag(built_repo, task), records,
              logged_predictions(built_repo, task, records), errors=12)

    code, summary = run_monitor(built_repo, tmp_path / "logs", tmp_path / "reports", task, "--since", "24h")

    scores = {name: column["score"] for name, column in summary["features"].items()}
    assert code == 0, (summary["drifted_features"], scores, summary["prediction"])
    assert summary["verdict"] == "no drift" and summary["drifted_features"] == []
    assert not any(column["drifted"] for column in summary["features"].values())
    assert not summary["prediction"]["drifted"]
    assert set(summary["features"]) == set(built_repo.json(f"models/{task}/reference.json")["features"])
    # read from the model that made the predictions, not from a file beside the code
    assert summary["reference"]["source"] == f"model store, {model_tag(built_repo, task)}"
    assert summary["counts"]["predictions"] == 600
    assert summary["counts"]["requests"] == 612 and summary["counts"]["errors"] == {"400": 12}
    assert summary["counts"]["error_rate"] == pytest.approx(12 / 612, abs=1e-4)
    ops = summary["operations"]
    assert ops["latency_ms"]["p50"] > 0 and ops["over_time"] and ops["bucket"]
    assert sum(bucket["requests"] for bucket in ops["over_time"]) == 612
    assert (tmp_path / "reports" / f"{task}-monitor.html").stat().st_size > 100_000


@pytest.fixture(scope="module")
def shifted_report(built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    """600 training-distribution requests with median_income x 1.5, reported against reference.json."""
    base = tmp_path_factory.mktemp("shifted")
    records = traffic(built_repo, "housing", 600, seed=2, income_factor=1.5)
    # a model tag that is not in the store: the explicit --reference must be used, and said so
    write_log(base / "logs", "housing", "housing-regressor:elsewhere", records,
              logged_predictions(built_repo, "housing", records))
    reference = built_repo.path / "models/housing/reference.json"
    started = time.perf_counter()
    code, summary = run_monitor(built_repo, base / "logs", base / "reports", "housing", "--reference", str(reference))
    print(f"\nmonitor report (600 rows, in-process, Evidently already imported or not): "
          f"{time.perf_counter() - started:.2f} s")
    return code, summary, base / "reports" / "housing-monitor.html"


def test_shifted_income_flags_that_feature_and_no_other(shifted_report: tuple[int, dict, Path],
                                                          built_repo: PipelineRepo) -> None:
    code, summary, _ = shifted_report
    scores = {name: column["score"] for name, column in summary["features"].items()}
    assert summary["drifted_features"] == ["median_income"], scores
    assert code == 1 and summary["verdict"] == "drift" and summary["exit_code"] == 1
    threshold = built_repo.params()["monitoring"]["report"]["threshold"]
    assert scores["median_income"] >= threshold
    assert all(score < threshold for name, score in scores.items() if name != "median_income")
    assert summary["reference"]["source"].endswith("models/housing/reference.json")


def test_report_html_has_the_verdict_operations_and_evidently(shifted_report: tuple[int, dict, Path]) -> None:
    html = shifted_report[2].read_text()
    assert "Drift detected: median_income" in html
    assert "Traffic, latency and errors" in html and "<svg" in html
    assert 'id="evidently"' in html and "drawDashboard" in html  # Evidently's page, inline
    assert "<script src=" not in html and "&lt;script src=" not in html  # nothing fetched from a CDN


def test_monitor_cli_exit_codes_and_messages(built_repo: PipelineRepo, tmp_path: Path) -> None:
    """Missing or empty log, too few rows, bad arguments: exit 2 and one clear line, never a traceback."""
    params = str(built_repo.path / "params.yaml")
    common = ["--task", "housing", "--out", str(tmp_path / "reports"), "--params", params]

    missing = run_cli(*common, "--log-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "no prediction log at" in missing.stderr and "Traceback" not in missing.stderr

    records = traffic(built_repo, "iris", 5, seed=3)
    write_log(tmp_path / "logs", "iris", model_tag(built_repo, "iris"), records,
              logged_predictions(built_repo, "iris", records))
    write_log(tmp_path / "logs", "housing", model_tag(built_repo, "housing"), [], [], errors=3)  # all rejected
    empty = run_cli(*common, "--log-dir", str(tmp_path / "logs"))
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    assert "no housing predictions in the whole log" in empty.stderr and "3 rejected requests" in empty.stderr

    few = run_cli("--task", "iris", "--log-dir", str(tmp_path / "logs"), "--out", str(tmp_path / "reports"),
                  "--params", params)
    assert few.returncode == 2 and "Traceback" not in few.stderr
    assert "not enough predictions yet: 5 iris predictions in the whole log, 300 are needed" in few.stderr
    assert "POST /iris/predict" in few.stderr and "SINCE=7d" in few.stderr  # how to get there

    old = run_cli(*common, "--log-dir", str(tmp_path / "logs"), "--since", "nonsense")
    assert old.returncode == 2 and "--since must look like" in old.stderr
    assert not (tmp_path / "reports").exists()


def test_monitor_cli_end_to_end(built_repo: PipelineRepo, tmp_path: Path) -> None:
    """The real command, as `make monitor` runs it; prints the verdict and where the report is."""
    records = traffic(built_repo, "housing", 400, seed=4, income_factor=1.5)
    write_log(tmp_path / "logs", "housing", model_tag(built_repo, "housing"), records,
              logged_predictions(built_repo, "housing", records))
    started = time.perf_counter()
    result = run_cli("--task", "housing", "--since", "1h", "--log-dir", str(tmp_path / "logs"),
                     "--out", str(tmp_path / "reports"), "--params", str(built_repo.path / "params.yaml"))
    print(f"\nmonitor CLI, 400 rows, cold process: {time.perf_counter() - started:.2f} s")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "monitor housing: drift (1 of 9 features drifted: median_income" in result.stdout
    assert result.stderr == ""  # third-party deprecation noise stays out of a scheduler's mail


# -- the sample: verdicts on a bounded sample of the window are the whole window's --------------------------

def verdicts(summary: dict[str, Any]) -> tuple[list[str], bool, list[str], int]:
    return (summary["drifted_features"], summary["prediction"]["drifted"],
            summary["data_quality"]["missing_features"], summary["exit_code"])


@pytest.mark.parametrize("shift", ["drifted", "clean"])
def test_sampled_verdicts_are_the_full_window_verdicts(built_repo: PipelineRepo, tmp_path: Path, shift: str) -> None:
    """3,000 predictions judged whole and on samples of 600 (three seeds): the same drifted features, prediction
    drift and missing-value findings, and the report says which rows it judged."""
    records = traffic(built_repo, "housing", 3000, seed=31, income_factor=1.5 if shift == "drifted" else 1.0)
    if shift == "drifted":
        records = without(records, "ocean_proximity", 0.4)
    write_log(tmp_path / "logs", "housing", model_tag(built_repo, "housing"), records,
              logged_predictions(built_repo, "housing", records))
    _, whole = run_monitor(built_repo, tmp_path / "logs", tmp_path / "whole", "housing", "--sample-rows", "5000")
    assert whole["sample"]["whole_window"] and whole["sample"]["rows"] == whole["sample"]["window_rows"] == 3000
    expected = ((["median_income"], True, ["ocean_proximity"], 1) if shift == "drifted" else ([], False, [], 0))
    assert verdicts(whole) == expected, whole["features"]
    for seed in ("1", "2", "3"):
        _, sampled = run_monitor(built_repo, tmp_path / "logs", tmp_path / seed, "housing", "--sample-rows", "600",
                                 "--seed", seed)
        assert verdicts(sampled) == verdicts(whole), (seed, sampled["features"])
        assert sampled["sample"]["rows"] == 600 and not sampled["sample"]["whole_window"]
        assert sampled["sample"]["seed"] == int(seed) and "drawn by the store" in sampled["sample"]["method"]
        assert sampled["counts"] == whole["counts"]  # counts and percentiles are the whole window's either way
        assert "a uniform sample of 600 (seed" in (tmp_path / seed / "housing-monitor.html").read_text()


def test_make_monitor_exits_with_the_monitors_own_code(built_repo: PipelineRepo, tmp_path: Path) -> None:
    """`make monitor` ends with the code the tools gave (drift: 1), not make's 2, and "not enough predictions yet"
    is a message, not make's "Error" line; without a C compiler (CC=false) make keeps its 2 and says why."""
    if shutil.which("cc") is None:
        if os.environ.get("REQUIRE_MONITORING_TESTS") == "1":
            pytest.fail("REQUIRE_MONITORING_TESTS=1 but there is no C compiler (scripts/install-monitoring-tools.sh)")
        pytest.skip("no C compiler for make monitor's exit helper: run scripts/install-monitoring-tools.sh")
    drifted = traffic(built_repo, "housing", 400, seed=41, income_factor=1.5)
    write_log(tmp_path / "drifted", "housing", model_tag(built_repo, "housing"), drifted,
              logged_predictions(built_repo, "housing", drifted))
    few = traffic(built_repo, "housing", 4, seed=42)
    write_log(tmp_path / "few", "housing", model_tag(built_repo, "housing"), few,
              logged_predictions(built_repo, "housing", few))

    def make(log: str, *extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PREDICTION_LOG_DIR": str(tmp_path / log)}
        env.pop("PREDICTION_LOG_URL", None)
        return subprocess.run(["make", "-o", "install", "monitor", "SINCE=1h", f"MONITOR_OUT={tmp_path / 'out'}",
                               *extra], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)

    drift = make("drifted")
    assert drift.returncode == 1, drift.stdout[-2000:] + drift.stderr[-2000:]
    assert "monitor housing: exit 1 (drift)" in drift.stdout and "make: ***" not in drift.stderr
    nothing = make("few")
    assert nothing.returncode == 2 and "make: ***" not in nothing.stderr and "Traceback" not in nothing.stderr
    assert "not enough predictions yet: 4 housing predictions in the last 1h, 300 are needed" in nothing.stderr
    no_compiler = make("drifted", "CC=false", f"MAKE_EXIT={tmp_path / 'helper' / 'make_exit.so'}")
    assert no_compiler.returncode == 2 and "no C compiler" in no_compiler.stderr
    assert "monitor housing: exit 1 (drift)" in no_compiler.stdout and "Error 1" in no_compiler.stderr


# -- missing values: a data-quality finding, drift on the values sent -------------------------------------

def without(records: list[dict[str, Any]], feature: str, share: float) -> list[dict[str, Any]]:
    """The records with `feature` missing (None, as the service logs an optional field not sent) in `share`."""
    cut = round(len(records) * share)
    return [{**record, feature: None} if i < cut else record for i, record in enumerate(records)]


def test_a_feature_never_sent_is_missing_values_not_drift(built_repo: PipelineRepo, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Training-distribution traffic from a client that never sends ocean_proximity: exit 4, no drift."""
    records = without(traffic(built_repo, "housing", 600, seed=21), "ocean_proximity", 1.0)
    write_log(tmp_path / "logs", "housing", model_tag(built_repo, "housing"), records,
              logged_predictions(built_repo, "housing", records))

    code, summary = run_monitor(built_repo, tmp_path / "logs", tmp_path / "reports", "housing")

    assert code == 4 and summary["exit_code"] == 4 and summary["verdict"] == "missing values", summary["verdict"]
    assert summary["drifted_features"] == [] and not summary["prediction"]["drifted"]
    quality = summary["data_quality"]
    assert quality["missing_features"] == ["ocean_proximity"]
    assert quality["missing"]["ocean_proximity"]["message"] == "100 % missing (reference 0 %)"
    assert not any(finding["flagged"] for name, finding in quality["missing"].items() if name != "ocean_proximity")
    assert "ocean_proximity" not in summary["features"]
    assert summary["not_judged"] == {"ocean_proximity": "not judged: no values sent, 300 needed (min_rows)"}
    assert "data quality: ocean_proximity 100 % missing (reference 0 %)" in capsys.readouterr().out
    html = (tmp_path / "reports" / "housing-monitor.html").read_text()
    assert "No drift: 0 of 8 features" in html and "missing values: ocean_proximity 100 % missing" in html


def test_drift_is_judged_on_the_values_sent_beside_missing_values(built_repo: PipelineRepo, tmp_path: Path) -> None:
    """Income x 1.5 with ocean_proximity missing in 40 % of rows: drift of median_income only (exit 1, drift wins),
    ocean_proximity judged on the 360 values sent and not drifted, its 40 % reported as a finding."""
    records = without(traffic(built_repo, "housing", 600, seed=22, income_factor=1.5), "ocean_proximity", 0.4)
    write_log(tmp_path / "logs", "housing", model_tag(built_repo, "housing"), records,
              logged_predictions(built_repo, "housing", records))

    code, summary = run_monitor(built_repo, tmp_path / "logs", tmp_path / "reports", "housing")

    assert code == 1 and summary["verdict"] == "drift"
    assert summary["drifted_features"] == ["median_income"], summary["features"]
    assert summary["features"]["ocean_proximity"]["drifted"] is False and summary["not_judged"] == {}
    assert summary["data_quality"]["missing_features"] == ["ocean_proximity"]
    assert summary["data_quality"]["missing"]["ocean_proximity"]["message"] == "40 % missing (reference 0 %)"


def test_missing_values_under_the_threshold_are_no_finding(built_repo: PipelineRepo, tmp_path: Path) -> None:
    threshold = built_repo.params()["monitoring"]["report"]["missing_share"]
    records = without(traffic(built_repo, "housing", 600, seed=23), "ocean_proximity", threshold / 2)
    write_log(tmp_path / "logs", "housing", model_tag(built_repo, "housing"), records,
              logged_predictions(built_repo, "housing", records))

    code, summary = run_monitor(built_repo, tmp_path / "logs", tmp_path / "reports", "housing")

    assert code == 0 and summary["verdict"] == "no drift", summary["data_quality"]
    assert summary["data_quality"]["missing_features"] == []
    assert summary["data_quality"]["missing"]["ocean_proximity"]["current_share"] == pytest.approx(threshold / 2)


# -- the report in a browser -------------------------------------------------------------------------

def _require_chromium() -> None:
    if chromium() is None:
        if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
            pytest.fail("REQUIRE_BROWSER_TESTS=1 but chromium is not installed (scripts/install-test-browser.sh)")
        pytest.skip("chromium is not installed: run scripts/install-test-browser.sh (CI sets REQUIRE_BROWSER_TESTS=1)")


EVIDENTLY_RENDERED = """(() => {
  const frame = document.getElementById("evidently");
  const doc = frame && frame.contentDocument;
  const root = doc && doc.querySelector("[id^=root_]");
  return !!root && root.childElementCount > 0 && doc.body.innerText.includes("median_income")
    && frame.getBoundingClientRect().height > 600;
})()"""


def test_report_opens_in_headless_chromium_without_errors(shifted_report: tuple[int, dict, Path]) -> None:
    _require_chromium()
    screenshot = ARTIFACTS / "monitor-report.png"
    screenshot.unlink(missing_ok=True)
    page = open_page(shifted_report[2].resolve().as_uri(), screenshot, ready_js=EVIDENTLY_RENDERED)
    assert page.ready, "Evidently's section never rendered (drift table with median_income, iframe resized)"
    assert page.errors == []
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000


def test_browser_check_sees_console_and_network_errors(tmp_path: Path) -> None:
    """The check above can fail: a page with a console error and a blocked CDN script is caught."""
    _require_chromium()
    page_path = tmp_path / "broken.html"
    page_path.write_text('<html><body><script>console.error("boom")</script>'
                         '<script src="https://cdn.invalid/lib.js"></script></body></html>')
    page = open_page(page_path.as_uri(), tmp_path / "broken.png", timeout=20)
    assert any("boom" in error for error in page.errors)
    assert any("cdn.invalid" in error for error in page.errors)


# -- live drift on /metrics ---------------------------------------------------------------------------

def drift_gauges(metrics_text: str, task: str) -> dict[str, float]:
    pattern = re.compile(r'^feature_drift_score\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
    scores = {}
    for line in metrics_text.splitlines():
        match = pattern.match(line)
        if match and f'task="{task}"' in match["labels"]:
            scores[re.search(r'feature="([^"]+)"', match["labels"])[1]] = float(match["value"])
    return scores


def test_live_drift_gauges_flag_the_shifted_feature(built_repo: PipelineRepo, tmp_path: Path) -> None:
    live_params = built_repo.params()["monitoring"]["live"]
    window, threshold = live_params["window"], live_params["threshold"]
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs")
    try:
        live.wait_ready()
        assert drift_gauges(httpx.get(f"{live.url}/metrics").text, "housing") == {}  # nothing before a full window
        send_housing(live.url, traffic(built_repo, "housing", window + 100, seed=5))
        clean = drift_gauges(httpx.get(f"{live.url}/metrics").text, "housing")
        assert set(clean) == set(built_repo.json("models/housing/reference.json")["features"])
        assert max(clean.values()) < threshold, clean

        send_housing(live.url, traffic(built_repo, "housing", window + 100, seed=6, income_factor=1.5))
        shifted = drift_gauges(httpx.get(f"{live.url}/metrics").text, "housing")
        assert shifted["median_income"] > threshold, shifted
        assert all(score < threshold for name, score in shifted.items() if name != "median_income"), shifted
        assert "prediction_drift_score" in httpx.get(f"{live.url}/metrics").text
    finally:
        live.stop()


def test_live_drift_costs_microseconds_per_request(built_repo: PipelineRepo) -> None:
    """The request path: one row per request, scores recomputed and published every `every` rows."""
    profile = built_repo.json("models/housing/reference.json")
    records = traffic(built_repo, "housing", 4000, seed=7)
    for record in records:
        record["ocean_proximity"] = record.get("ocean_proximity")  # as model_dump() gives it
    predictions = logged_predictions(built_repo, "housing", records)
    window = DriftWindow(profile, gauge_publisher("housing", list(profile["features"])))
    window.add(records[:100], predictions[:100])  # warm up
    started = time.perf_counter()
    for record, prediction in zip(records, predictions, strict=True):
        window.add([record], [prediction])
    per_request_us = (time.perf_counter() - started) / len(records) * 1e6
    print(f"\nlive drift: {per_request_us:.1f} us per single-row request (window {window.size}, every {window.every})")
    assert per_request_us < 50


def test_bento_ships_the_live_drift_code_but_not_the_monitor(bento_tag: str) -> None:
    """Evidently and `make monitor` stay out of the Bento (and so out of the image); the live drift code is in."""
    import bentoml

    src = Path(bentoml.bentos.get(bento_tag).path) / "src"
    shipped = {str(path.relative_to(src)) for path in src.rglob("*.py")}
    assert {"bento_service/live_drift.py", "domain/drift.py", "bento_service/service.py"} <= shipped
    assert not {name for name in shipped if name.startswith(("monitoring/", "stages/"))}, shipped
    requirements = "\n".join(p.read_text() for p in src.parent.rglob("requirements*.txt"))
    assert "scikit-learn" in requirements and "evidently" not in requirements.lower()
