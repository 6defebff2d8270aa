"""Explanations: the cost of one housing explanation on one core, and what explain load does to
predictions.

    python -m bench.explain                       # the workspace's pipeline outputs and BentoML store
    python -m bench.explain --smoke --repo PATH   # seconds, for tests

1. In process, this process pinned to one core (`--core`, sched_setaffinity: what `taskset -c` does): one
   explanation (2**9 coalitions x the background rows through the served predictor, then the Shapley
   weights) for each of `--explanations` distinct test-split rows; p50/p90 of wall and of CPU time. Beside
   it the physical floor: the one batched model call alone on the same rows (no encoding, no weighting).
2. Over HTTP, the server (`bentoml serve`, 1 worker) pinned to that core, wrk on the other: predict p50/p99
   alone, then the same predict load with `--explain-connections` clients asking /housing/explain as fast
   as they are answered (429s counted: the explanation pool's bound at work).

Writes `--out` (JSON) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import workload
from bench.loadgen import LoadResult, run_load
from bench.machine import describe
from bench.servers import ProjectServer, served_tags, source_bentoml_home

CODE_ROOT = Path(__file__).resolve().parent.parent


class PinnedProjectServer(ProjectServer):
    """The project's server with every process on one core."""

    name = "project-pinned"

    def __init__(self, *args: Any, core: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core = core

    def command(self) -> list[str]:
        return ["taskset", "-c", str(self.core), *super().command()]


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "max_ms": round(float(ms.max()), 2)}


def in_process(repo: Path, core: int, explanations: int) -> dict[str, Any]:
    """One housing explanation at a time on one core, and the floor (the batched model call alone)."""
    os.environ.setdefault("BENTOML_HOME", str(source_bentoml_home()))
    import bentoml

    from bento_service.explainer import ServedExplainer
    from bento_service.native_threads import limit_native_threads
    from bento_service.predictors import load_predictor
    from domain.explain import encode
    from domain.schema import load_schema

    housing = load_schema("housing")

    os.sched_setaffinity(0, {core})
    limit_native_threads()
    tag = served_tags(repo)["housing"]["champion"]
    model = bentoml.models.get(tag)
    estimator = bentoml.sklearn.load_model(model)
    predictor = load_predictor("housing", estimator, model.custom_objects, dict(model.info.metadata))
    explainer = ServedExplainer("housing", model.custom_objects["explain_background"]["records"], predictor, [],
                                concurrency=1, queue=0)
    rows = workload.housing_rows(repo, explanations)
    explainer.explain_now(rows[0])  # warm-up
    wall, cpu, floor = [], [], []
    for row in rows:
        started, started_cpu = time.perf_counter(), time.thread_time()
        explainer.explain_now(row)
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        matrix = explainer.shapley.coalition_rows(encode(housing, [row])[0])
        started = time.perf_counter()
        predictor.predict_fields(matrix)
        floor.append(time.perf_counter() - started)
    explainer.close()
    return {"model": tag, "predictor": predictor.kind, "background_rows": explainer.background_rows,
            "rows_per_explanation": explainer.shapley.rows_per_explanation, "explanations": len(rows),
            "wall": _percentiles(wall), "cpu": _percentiles(cpu), "floor_model_call": _percentiles(floor)}


def over_http(repo: Path, core: int, duration: float, predict_connections: int,
              explain_connections: int, work_dir: Path) -> dict[str, Any]:
    """Predict latency alone and beside explain load, the server on one core."""
    server = PinnedProjectServer(work_dir, 1, CODE_ROOT, repo, core=core)
    server.start()
    try:
        server.wait_ready()
        bodies = [workload.project_body(row) for row in workload.housing_rows(repo, 200)]
        run_load(server.url + "/housing/predict", bodies, predict_connections, min(2.0, duration))  # warm-up
        alone = run_load(server.url + "/housing/predict", bodies, predict_connections, duration)
        explained: dict[str, LoadResult] = {}

        def explain_load() -> None:
            explained["result"] = run_load(server.url + "/housing/explain", bodies, explain_connections,
                                           duration + 1.0)

        thread = threading.Thread(target=explain_load)
        thread.start()
        time.sleep(0.5)  # the explain load is running before predictions are measured
        beside = run_load(server.url + "/housing/predict", bodies, predict_connections, duration)
        thread.join()
        return {"core": core, "predict_connections": predict_connections,
                "explain_connections": explain_connections, "duration_s": duration,
                "predict_alone": asdict(alone), "predict_with_explain_load": asdict(beside),
                "explain_load": asdict(explained["result"])}
    finally:
        server.stop()


def markdown(results: dict[str, Any]) -> str:
    one = results["in_process"]
    lines = [f"One housing explanation, in process, one core ({one['predictor']} predictor, "
             f"{one['background_rows']} background rows = {one['rows_per_explanation']:,} model rows, "
             f"{one['explanations']} distinct test rows):", "",
             "| | p50 | p90 | max |", "|---|---|---|---|"]
    for key, label in (("wall", "explanation, wall"), ("cpu", "explanation, CPU"),
                       ("floor_model_call", "floor: the batched model call alone")):
        p = one[key]
        lines.append(f"| {label} | {p['p50_ms']} ms | {p['p90_ms']} ms | {p['max_ms']} ms |")
    http = results.get("http")
    if http:
        lines += ["", f"Over HTTP, server on core {http['core']} (1 worker), {http['predict_connections']} predict "
                      f"connections, {http['duration_s']} s per run:", "",
                  "| load | predict p50 | predict p99 | predict req/s | explanations/s | explain p50 | explain 429s |",
                  "|---|---|---|---|---|---|---|"]
        alone, beside, explain = http["predict_alone"], http["predict_with_explain_load"], http["explain_load"]
        lines.append(f"| predict alone | {alone['p50_ms']:.1f} ms | {alone['p99_ms']:.1f} ms | {alone['rps']:.0f} "
                     "| | | |")
        lines.append(f"| + {http['explain_connections']} explain clients | {beside['p50_ms']:.1f} ms | "
                     f"{beside['p99_ms']:.1f} ms | {beside['rps']:.0f} | {explain['rps']:.1f} | "
                     f"{explain['p50_ms']:.1f} ms | {explain['non_2xx']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=CODE_ROOT, help="a reproduced pipeline")
    parser.add_argument("--core", type=int, default=1)
    parser.add_argument("--explanations", type=int, default=60)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP run")
    parser.add_argument("--predict-connections", type=int, default=4)
    parser.add_argument("--explain-connections", type=int, default=4)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="5 explanations, 2 s runs")
    parser.add_argument("--out", type=Path, default=CODE_ROOT / "bench" / "explain-results.json")
    parser.add_argument("--work-dir", type=Path, default=CODE_ROOT / ".artifacts" / "bench-explain")
    args = parser.parse_args(argv)
    if args.smoke:
        args.explanations, args.duration = 5, 2.0
    results: dict[str, Any] = {"machine": describe(), "command": "python -m bench.explain "
                               + " ".join(argv if argv is not None else sys.argv[1:])}
    if not args.no_http:  # before pinning this process: the load generator runs on the other core
        results["http"] = over_http(args.repo, args.core, args.duration, args.predict_connections,
                                    args.explain_connections, args.work_dir)
    results["in_process"] = in_process(args.repo, args.core, args.explanations)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
