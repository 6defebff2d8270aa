"""`make bench-smoke`: the benchmark harness runs end to end and writes well-formed results.

A few seconds per server against the session's reproduced pipeline (small models): the project
(`bentoml serve`), peer 1 (`mlflow models serve`), peer 2 (bench/seed_app.py), peer 3 (bench/docs_peer.py,
BentoML's docs idiom), the project's own service at git HEAD (`--serving-peer`), a 50-record predict_batch,
the in-process model-time floor, and no-op `dvc repro` timings. Nothing here asserts a
timing: the machine is shared and the models are tiny. Every tool the harness needs is in the
virtualenv (mlflow, uvicorn); without `wrk` the harness uses its asyncio client instead, so no
peer is ever skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.dvc_repo import PROJECT_ROOT, PipelineRepo, venv_env


def test_bench_smoke_writes_results_with_zero_errors(repo: PipelineRepo, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    run = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--repo", str(repo.path), "--out-dir", str(out),
                          "--serving-peer", "HEAD", "--peers", "mlflow,seed,docs,pg"],
                         cwd=PROJECT_ROOT, env=venv_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    serving = results["serving"]
    assert {r["server"] for r in serving["runs"]} == {"project", "mlflow", "seed", "docs", "serving-peer",
                                                      "project-pg"}
    for r in serving["runs"] + serving["batch_runs"]:
        assert r["ok"] > 0 and r["non_2xx"] == 0 and r["socket_errors"] == 0, r
    assert serving["inprocess_runs"] and serving["inprocess_runs"][0]["rows_per_s"] > 0
    floor = {(f["predictor"], f["rows"]) for f in serving["summary"]["floor"]}
    assert {("scikit-learn", 1), ("scikit-learn", 16)} <= floor
    for label, check in serving["logging"].items():
        assert check["logged_rows"] >= check["answered_rows"] > 0, label
    assert {w["store"] for w in results["log_writer"]} == {"sqlite", "postgresql"}
    assert all(w["rows_per_s"] > 0 for w in results["log_writer"])
    assert "project-pg w1" in serving["logging"] and "## Prediction log writer" in (out / "RESULTS.md").read_text()
    workers = [p for p in serving["memory"]["project w1"] if p["role"] == "worker"]
    assert len(workers) == 1 and workers[0]["rss_mb"] > 0
    assert len(results["pipeline"]["noop"]["runs_s"]) == 3

    report = (out / "RESULTS.md").read_text()
    for section in ("## Machine", "## Commands", "## Targets", "## Serving", "### Model-time floor", "## Batch",
                    "## Prediction log check", "## Memory", "## Pipeline"):
        assert section in report


def test_bench_pipeline_smoke_measures_full_incremental_and_revert(repo: PipelineRepo, tmp_path: Path) -> None:
    """`--pipeline full` on the test repository's small pipeline: the harness that `make bench` runs on the real
    one (clean copy, no-op, one-candidate change, revert, and a peer revision interleaved: here HEAD itself), so it
    cannot rot unnoticed. No timing is asserted."""
    out = tmp_path / "bench"
    run = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--no-serving", "--pipeline", "full",
                          "--pipeline-code", str(repo.path), "--pipeline-peer", "HEAD",
                          "--housing-csv", str(repo.housing_csv),
                          "--out-dir", str(out)],
                         cwd=PROJECT_ROOT, env=venv_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    pipeline = json.loads((out / "results.json").read_text())["pipeline"]
    full = pipeline["full"]
    # a clean copy holds the committed dvc.lock and models/<task>/bento_tags.json: `package@<task>`, whose output is
    # then unchanged, is skipped (`make bento` fills the model store)
    every_stage = {name for name in repo.stage_names() if not name.startswith("package@")}
    assert {s["stage"] for s in full["stages"]} == every_stage
    assert full["cpu_s"] > 0 and full["runs_s"] == [full["wall_s"]]
    assert all(s["peak_rss_mb"] > 0 for s in full["stage_medians"] if s["stage"].startswith("train@"))
    assert len(pipeline["noop"]["runs_s"]) == 5
    # the gate re-checks; if the tree is served (on this small data it can be the challenger), what follows the
    # gate runs too, and on the revert `package@housing` runs again (its output is git-tracked, not cached)
    served = {repo.json("models/housing/served/served.json")[role]["candidate"] for role in ("champion", "challenger")}
    downstream = {"profile@housing", "compile@housing", "explain@housing"} if "housing-tree" in served else set()
    # check-params reads the whole params file: it reruns on any edit, with the same output (nothing else follows)
    one_candidate = {"check-params", "train@housing-tree", "evaluate@housing", "promote@housing", *downstream,
                     *(["package@housing"] if downstream else [])}
    assert {s["stage"] for s in pipeline["one_candidate"]["stages"]} == one_candidate
    # reverting restores check-params too (same params bytes as before): one more stage from the run cache
    revert = (4 + len(downstream), ["package@housing"] if downstream else [])
    assert (pipeline["revert"]["cached_stages"], [s["stage"] for s in pipeline["revert"]["stages"]]) == revert
    assert len(pipeline["reference_fit_s"]) == 2 and min(pipeline["reference_fit_s"]) > 0
    peer = pipeline["peer"]
    assert peer["revision"] == "HEAD" and {s["stage"] for s in peer["full"]["stages"]} == every_stage
    assert {s["stage"] for s in peer["one_candidate"]["stages"]} == one_candidate

    report = (out / "RESULTS.md").read_text()
    for text in ("## Pipeline", "### Full `dvc repro`", "### One-candidate param change", "full dvc repro <= 180 s",
                 "one-candidate param change <= 20 s", "### Against `HEAD`", "Reference job:"):
        assert text in report


def test_explain_bench_smoke_reports_the_cost_and_predict_latency_beside_explain_load(repo: PipelineRepo,
                                                                                       tmp_path: Path) -> None:
    """`python -m bench.explain --smoke`: one core in process, then predict with and without explain load."""
    out = tmp_path / "explain.json"
    run = subprocess.run([sys.executable, "-m", "bench.explain", "--smoke", "--repo", str(repo.path), "--out", str(out),
                          "--work-dir", str(tmp_path / "work"), "--core", "0"],
                         cwd=PROJECT_ROOT, env=venv_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    one = results["in_process"]
    assert one["rows_per_explanation"] == 512 * one["background_rows"] and one["wall"]["p50_ms"] > 0
    assert one["floor_model_call"]["p50_ms"] > 0
    http = results["http"]
    assert http["predict_alone"]["ok"] > 0 and http["predict_with_explain_load"]["ok"] > 0
    assert http["predict_alone"]["socket_errors"] == http["predict_with_explain_load"]["socket_errors"] == 0
    assert http["explain_load"]["ok"] > 0
    assert "| + 4 explain clients |" in run.stdout


def test_bench_shadow_smoke_shadows_every_request_with_zero_errors(repo: PipelineRepo, tmp_path: Path) -> None:
    """`python -m bench.shadow --smoke` (the CPU budget `python -m bench.shadow` measures): both
    servers answer, the shadow one logs a shadow row for every answered request, and the report is written.
    No ratio is asserted: the machine is shared."""
    out = tmp_path / "shadow" / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench.shadow", "--smoke", "--repo", str(repo.path), "--out", str(out)],
                         cwd=PROJECT_ROOT, env=venv_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {r["mode"] for r in results["runs"]} == {"off", "shadow"}
    for r in results["runs"]:
        assert r["requests"] > 0 and r["non_2xx"] == 0 and r["cpu_ms_per_request"] > 0, r
        assert (r["shadow_rows"] >= r["requests"]) if r["mode"] == "shadow" else r["shadow_rows"] == 0, r
    [summary] = results["summary"]
    assert summary["ratio"] > 0 and len(summary["round_ratios"]) == 1
    compiled = repo.json("models/housing/compiled-challenger/compiled.json")["compiled"]
    assert results["challenger_floor"]["predictor"]["kind"] == ("compiled" if compiled else "scikit-learn")
    assert "shadow / off" in (out.parent / "RESULTS.md").read_text()
