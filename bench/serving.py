"""The serving benchmark: every server up at once, measured in interleaved rounds.

All servers are started first and stay up; each round then loads them one after another, in
an order rotated per round, so slow drifts of the shared machine's load hit every server alike.
Within a round each (server, connections) pair gets a warm-up run (discarded) and a measured
run. Batch throughput (/housing/predict_batch, 1,000 records) and the champion's in-process
predict on the same rows are measured in the same rounds.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import workload
from bench.inprocess import InProcessModel
from bench.loadgen import LoadResult, run_load
from bench.servers import (
    DocsPeerServer,
    MlflowServer,
    PostgresLoggingServer,
    ProjectServer,
    SeedServer,
    Server,
    ServingPeerServer,
)


@dataclass
class ServingPlan:
    code_root: Path
    repo: Path
    work_dir: Path
    workers: list[int]
    connections: list[int]
    peers: list[str]
    rounds: int
    duration_s: float
    warmup_s: float
    batch_duration_s: float
    batch_rows: int
    tool: str = "auto"
    project_target: str | None = None
    serving_peer: str | None = None  # a git revision of the project, served on the same models
    floor_rows: tuple[int, ...] = (1, 16, 1000)
    new_log_database: Callable[[str], str] | None = None  # PostgreSQL for the "pg" peer (bench/logstore.py)
    log: Callable[[str], None] = print


@dataclass
class _Tally:
    """Answers each server gave (warm-up runs included), to check against its prediction log."""

    answered_rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, label: str, result: LoadResult, rows_per_request: int = 1) -> None:
        self.answered_rows[label] += result.ok * rows_per_request


def build_servers(plan: ServingPlan) -> list[Server]:
    servers: list[Server] = []
    for workers in plan.workers:
        servers.append(ProjectServer(plan.work_dir, workers, plan.code_root, plan.repo, plan.project_target))
    for workers in plan.workers:
        if "pg" in plan.peers and plan.new_log_database:
            servers.append(PostgresLoggingServer(plan.work_dir, workers, plan.code_root, plan.repo,
                                                 plan.new_log_database(f"bench_w{workers}"),
                                                 plan.project_target))
        if plan.serving_peer:
            servers.append(ServingPeerServer(plan.work_dir, workers, plan.code_root, plan.repo, plan.serving_peer))
        if "docs" in plan.peers:
            servers.append(DocsPeerServer(plan.work_dir, workers, plan.code_root, plan.repo))
        if "mlflow" in plan.peers:
            servers.append(MlflowServer(plan.work_dir, workers, plan.repo))
        if "seed" in plan.peers:
            servers.append(SeedServer(plan.work_dir, workers, plan.code_root, plan.repo))
    return servers


def run_serving(plan: ServingPlan) -> dict[str, Any]:
    rows = workload.housing_rows(plan.repo, 256)
    batch_rows = workload.housing_rows(plan.repo, plan.batch_rows)
    batch = [workload.batch_body(batch_rows)]
    servers = build_servers(plan)
    runs: list[dict[str, Any]] = []
    batch_runs: list[dict[str, Any]] = []
    inprocess_runs: list[dict[str, Any]] = []
    floor_runs: list[dict[str, Any]] = []
    tally = _Tally()
    try:
        for server in servers:  # one at a time: start-up is CPU-heavy and would distort the start-up times
            server.start()
            server.wait_ready()
            plan.log(f"  {server.label}: ready in {server.started_s:.1f} s on {server.url}")
        model = InProcessModel(plan.repo)
        for round_no in range(plan.rounds):
            order = servers[round_no % len(servers):] + servers[:round_no % len(servers)]
            for connections in plan.connections:
                for server in order:
                    bodies = [server.body(row) for row in rows]
                    url = server.url + server.predict_path
                    tally.add(server.label, run_load(url, bodies, connections, plan.warmup_s, plan.tool))
                    cpu_before = server.cpu_seconds()
                    result = run_load(url, bodies, connections, plan.duration_s, plan.tool)
                    server_cpu = server.cpu_seconds() - cpu_before
                    tally.add(server.label, result)
                    runs.append({"round": round_no, "server": server.name, "workers": server.workers,
                                 "label": server.label, **result.as_dict(), "server_cpu_s": round(server_cpu, 3),
                                 "server_cpu_ms_per_request": round(1000 * server_cpu / max(result.requests, 1), 3)})
                    plan.log(f"  round {round_no + 1} c={connections:<3} {server.label:<11} {result.rps:8.1f} req/s  "
                             f"p50 {result.p50_ms:6.1f}  p99 {result.p99_ms:7.1f} ms  non-2xx {result.non_2xx}")
            for server in (s for s in order if s.name.startswith("project")):
                url = server.url + "/housing/predict_batch"
                tally.add(server.label, run_load(url, batch, 1, plan.warmup_s, plan.tool), len(batch_rows))
                result = run_load(url, batch, 1, plan.batch_duration_s, plan.tool)
                tally.add(server.label, result, len(batch_rows))
                batch_runs.append({"round": round_no, "label": server.label, "workers": server.workers,
                                   **result.as_dict(), "rows_per_s": result.rps * len(batch_rows)})
                plan.log(f"  round {round_no + 1} batch {server.label:<11} {result.rps * len(batch_rows):9.0f} rows/s "
                         f"p50 {result.p50_ms:6.1f} ms  non-2xx {result.non_2xx}")
            inprocess = model.rows_per_second(batch_rows, plan.batch_duration_s)
            inprocess_runs.append({"round": round_no, **inprocess})
            plan.log(f"  round {round_no + 1} in-process predict  {inprocess['rows_per_s']:9.0f} rows/s")
            for item in model.floor(batch_rows, plan.floor_rows, max(0.5, plan.batch_duration_s / 3)):
                floor_runs.append({"round": round_no, **item})
                plan.log(f"  round {round_no + 1} model time {item['predictor']:<12} {item['rows']:>5} rows "
                         f"{item['median_call_ms']:8.3f} ms")
        time.sleep(1)  # let requests cut off by the load generator's stop finish and be logged
        memory = {server.label: server.memory() for server in servers}
        logging = {}
        for server in servers:
            logged = server.logged_rows()
            if logged is not None:
                answered = tally.answered_rows[server.label]
                logging[server.label] = {"answered_rows": answered, "logged_rows": logged,
                                         "answered_but_not_logged": max(0, answered - logged)}
        startup = {server.label: round(server.started_s, 2) for server in servers}
    finally:
        for server in servers:
            server.stop()
    summary = summarize(runs, batch_runs, inprocess_runs)
    summary["floor"] = summarize_floor(floor_runs)
    return {"runs": runs, "batch_runs": batch_runs, "inprocess_runs": inprocess_runs, "floor_runs": floor_runs,
            "memory": memory, "logging": logging, "startup_s": startup, "summary": summary}


# -- summary ---------------------------------------------------------------------------------

def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summarize_floor(floor_runs: list[dict]) -> list[dict[str, Any]]:
    """Median model time per (predictor, rows) over rounds, and the compiled model's speed-up in each round."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for run in floor_runs:
        groups[(run["predictor"], run["rows"])].append(run)
    out = []
    for (predictor, rows), items in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        entry = {"predictor": predictor, "rows": rows, "median_call_ms": _median([r["median_call_ms"] for r in items]),
                 "rounds": len(items)}
        if predictor != "scikit-learn":
            base = {r["round"]: r["median_call_ms"] for r in groups.get(("scikit-learn", rows), [])}
            entry["speedup_vs_sklearn"] = _median([base[r["round"]] / r["median_call_ms"] for r in items
                                                   if r["round"] in base and r["median_call_ms"] > 0])
        out.append(entry)
    return out


def summarize(runs: list[dict], batch_runs: list[dict], inprocess_runs: list[dict]) -> dict[str, Any]:
    """Medians per (server, workers, connections); best config per server; ratios within rounds."""
    groups: dict[tuple[str, int, int], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["server"], run["workers"], run["connections"])].append(run)
    configs = []
    for (server, workers, connections), items in sorted(groups.items()):
        configs.append({"server": server, "workers": workers, "connections": connections, "rounds": len(items),
                        "rps": _median([r["rps"] for r in items]), "p50_ms": _median([r["p50_ms"] for r in items]),
                        "p95_ms": _median([r["p95_ms"] for r in items]),
                        "p99_ms": _median([r["p99_ms"] for r in items]),
                        "non_2xx": sum(r["non_2xx"] for r in items),
                        "socket_errors": sum(r["socket_errors"] for r in items),
                        "server_cpu_ms_per_request": _median([r["server_cpu_ms_per_request"] for r in items]),
                        "client_cpu_share": _median([r["client_cpu_s"] / r["duration_s"] for r in items])})
    best: dict[tuple[str, int], dict] = {}
    for config in configs:
        key = (config["server"], config["connections"])
        if key not in best or config["rps"] > best[key]["rps"]:
            best[key] = config
    ratios = []
    for (server, connections), peer in sorted(best.items()):
        if server == "project" or ("project", connections) not in best:
            continue
        ours = best[("project", connections)]
        per_round = []
        for round_no in sorted({r["round"] for r in runs}):
            mine = [r["rps"] for r in groups[("project", ours["workers"], connections)] if r["round"] == round_no]
            theirs = [r["rps"] for r in groups[(server, peer["workers"], connections)] if r["round"] == round_no]
            if mine and theirs and theirs[0] > 0:
                per_round.append(mine[0] / theirs[0])
        ratios.append({"peer": server, "connections": connections, "project_workers": ours["workers"],
                       "peer_workers": peer["workers"], "throughput_ratio": _median(per_round),
                       "throughput_ratio_per_round": [round(x, 2) for x in per_round],
                       "project_p99_ms": ours["p99_ms"], "peer_p99_ms": peer["p99_ms"]})
    batch = []
    inprocess = _median([r["rows_per_s"] for r in inprocess_runs])
    batch_groups: dict[str, list[dict]] = defaultdict(list)
    for run in batch_runs:
        batch_groups[run["label"]].append(run)
    for label, items in sorted(batch_groups.items()):
        per_round = []
        for item in items:
            same_round = [r["rows_per_s"] for r in inprocess_runs if r["round"] == item["round"]]
            if same_round:
                per_round.append(item["rows_per_s"] / same_round[0])
        batch.append({"label": label, "workers": items[0]["workers"],
                      "rows_per_s": _median([r["rows_per_s"] for r in items]),
                      "p50_ms": _median([r["p50_ms"] for r in items]), "non_2xx": sum(r["non_2xx"] for r in items),
                      "inprocess_rows_per_s": inprocess, "ratio_to_inprocess": _median(per_round)})
    return {"configs": configs, "best": [best[k] for k in sorted(best)], "ratios": ratios, "batch": batch,
            "inprocess_rows_per_s": inprocess}
