"""The issue's targets, checked against a run's summary: met / not met, with the numbers."""

from __future__ import annotations

import math
from typing import Any

from bench.pipeline import median

P99_AT_16_MS = 100.0
# throughput against each peer at 16 and 32 connections (4x BentoML's docs idiom, 2x today's service)
VS_PEER = {"mlflow": 3.0, "seed": 5.0, "docs": 4.0, "serving-peer": 2.0}
P50_AT_1_MS = 2.0
# the service logging to PostgreSQL keeps this share of its SQLite throughput, at this p99
PG_SHARE = 0.75
PG_P99_MS = 50.0
MODEL_16_ROWS_MS = 0.3
BATCH_SHARE = 0.5
NOOP_S = 1.5
ONE_CANDIDATE_S = 20.0
FULL_S = 180.0


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def check(results: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    serving = results.get("serving")
    if serving:
        summary = serving["summary"]
        for ratio in summary["ratios"]:
            if ratio["connections"] >= 16 and ratio["peer"] == "project-pg":
                share = 1 / ratio["throughput_ratio"] if ratio["throughput_ratio"] > 0 else 0.0
                ok = share >= PG_SHARE and ratio["peer_p99_ms"] <= PG_P99_MS
                out.append({"target": f"PostgreSQL logging >= {PG_SHARE:.0%} of SQLite logging's throughput at "
                                      f"{ratio['connections']} connections, p99 <= {PG_P99_MS:g} ms",
                            "measured": f"{share:.0%} (p99 {ratio['peer_p99_ms']:.1f} ms vs SQLite "
                                        f"{ratio['project_p99_ms']:.1f} ms)", "verdict": _verdict(ok)})
            if ratio["connections"] < 16 or ratio["peer"] not in VS_PEER:
                continue
            goal = VS_PEER[ratio["peer"]]
            ok = ratio["throughput_ratio"] >= goal
            if ratio["peer"] == "mlflow":
                ok = ok and ratio["project_p99_ms"] <= ratio["peer_p99_ms"]
            out.append({"target": f">= {goal:g}x {ratio['peer']} throughput at {ratio['connections']} connections"
                                  + (" at equal or lower p99" if ratio["peer"] == "mlflow" else ""),
                        "measured": f"{ratio['throughput_ratio']:.2f}x (p99 {ratio['project_p99_ms']:.1f} vs "
                                    f"{ratio['peer_p99_ms']:.1f} ms)", "verdict": _verdict(ok)})
        for best in summary["best"]:
            if best["server"] == "project" and best["connections"] == 1:
                out.append({"target": f"p50 <= {P50_AT_1_MS:g} ms at 1 connection",
                            "measured": f"{best['p50_ms']:.2f} ms (w{best['workers']})",
                            "verdict": _verdict(best["p50_ms"] <= P50_AT_1_MS)})
            if best["server"] == "project" and best["connections"] == 16:
                out.append({"target": f"p99 <= {P99_AT_16_MS:g} ms at 16 connections",
                            "measured": f"{best['p99_ms']:.1f} ms (w{best['workers']})",
                            "verdict": _verdict(best["p99_ms"] <= P99_AT_16_MS)})
        non_2xx = sum(c["non_2xx"] + c["socket_errors"] for c in summary["configs"] if c["server"] == "project")
        non_2xx += sum(b["non_2xx"] for b in summary["batch"])
        out.append({"target": "zero non-2xx (project)", "measured": f"{non_2xx} non-2xx or socket errors",
                    "verdict": _verdict(non_2xx == 0)})
        missing = sum(v["answered_but_not_logged"] for k, v in serving["logging"].items() if k.startswith("project"))
        logged = sum(v["logged_rows"] for k, v in serving["logging"].items() if k.startswith("project"))
        out.append({"target": "every request logged (project)",
                    "measured": f"{logged} rows logged, {missing} answered rows missing",
                    "verdict": _verdict(missing == 0)})
        for floor in summary.get("floor", []):
            if floor["predictor"] == "compiled" and floor["rows"] == 16:
                out.append({"target": f"model time for 16 rows <= {MODEL_16_ROWS_MS:g} ms (compiled, in process)",
                            "measured": f"{floor['median_call_ms']:.3f} ms ({floor['speedup_vs_sklearn']:.1f}x "
                                        "faster than scikit-learn)",
                            "verdict": _verdict(floor["median_call_ms"] <= MODEL_16_ROWS_MS)})
        if summary["batch"]:
            best_batch = max(summary["batch"], key=lambda b: b["ratio_to_inprocess"])
            out.append({"target": f"predict_batch (1,000 records) >= {BATCH_SHARE:.0%} of in-process predict",
                        "measured": f"{best_batch['ratio_to_inprocess']:.0%} ({best_batch['rows_per_s']:.0f} vs "
                                    f"{best_batch['inprocess_rows_per_s']:.0f} rows/s, w{best_batch['workers']})",
                        "verdict": _verdict(best_batch["ratio_to_inprocess"] >= BATCH_SHARE)})
    pipeline = results.get("pipeline") or {}
    noop = (pipeline.get("noop") or {}).get("runs_s")
    if noop:
        middle = median(noop)
        out.append({"target": f"no-op dvc repro <= {NOOP_S:g} s", "measured": f"{middle:.2f} s (median of {len(noop)})",
                    "verdict": _verdict(middle <= NOOP_S)})
    for key, label, budget in (("one_candidate", "one-candidate param change", ONE_CANDIDATE_S),
                               ("full", "full dvc repro", FULL_S)):
        if key in pipeline:
            wall, runs = pipeline[key]["wall_s"], pipeline[key].get("runs_s", [])
            measured = f"{wall:.1f} s" + (f" (median of {len(runs)}; slowest {max(runs):.1f} s)" if len(runs) > 1
                                          else "")
            out.append({"target": f"{label} <= {budget:g} s", "measured": measured,
                        "verdict": _verdict(wall <= budget)})
    return [t for t in out if not any(isinstance(v, float) and math.isnan(v) for v in t.values())]
