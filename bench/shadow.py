"""Shadow mode's price: server CPU per answered request with HOUSING_CHALLENGER=shadow against off.

    python -m bench.shadow                          # the workspace's pipeline outputs and BentoML store
    python -m bench.shadow --smoke --repo PATH      # seconds, for tests

Two servers of the same code and models (`bentoml serve`, 1 worker each), one per mode, loaded in turn with
`/housing/predict` by the load generator at each `--connections`, `--rounds` times in alternating order (this
machine is shared: only ratios measured in one run mean anything). Reported per concurrency: the median of each
server's CPU time (every process of the server, psutil) per answered request, and shadow / off: the median of
each round's ratio (both modes run back to back in a round, so a machine that speeds up or slows down between
rounds does not move it). Beside it the
physical floor of shadowing: the challenger's predictor alone in this process, per row, at 1 and 16 rows per
call (what the shadow arm must spend at least, before HTTP, logging and batching).

Writes `--out` (JSON) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import workload
from bench.loadgen import run_load
from bench.machine import describe
from bench.servers import ProjectServer, private_bentoml_home, served_tags
from bento_service.shadow import SHADOW_LINGER_S
from prediction_log.writer import IDLE_CHECK_S

CODE_ROOT = Path(__file__).resolve().parent.parent
# After a load run, before the CPU and the rows are read: the last shadow records wait SHADOW_LINGER_S for their
# call, then their rows for the log writer's idle tick (nobody commits a group for them once the load stops).
SETTLE_S = SHADOW_LINGER_S + IDLE_CHECK_S + 0.5


class ModeServer(ProjectServer):
    """The project's server with the housing challenger in one mode."""

    def __init__(self, *args: Any, mode: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.name = f"project-{mode}"

    def env(self) -> dict[str, str]:
        return {**super().env(), "HOUSING_CHALLENGER": self.mode}

    def shadow_rows(self) -> int:
        import sqlite3

        path = self.log_dir / "predictions.db"
        with sqlite3.connect(path, timeout=30) as db:
            return int(db.execute("SELECT COUNT(*) FROM predictions WHERE arm = 'shadow'").fetchone()[0])


def challenger_floor(repo: Path, home: Path, rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The challenger's served predictor (compiled or scikit-learn, as the service chooses) per row, one thread."""
    os.environ["BENTOML_HOME"] = str(home)
    import bentoml
    from threadpoolctl import threadpool_limits

    from bento_service.predictors import load_predictor

    tag = served_tags(repo)["housing"]["challenger"]
    model = bentoml.models.get(tag)
    predictor = load_predictor("housing", bentoml.sklearn.load_model(model), model.custom_objects,
                               dict(model.info.metadata))
    out: dict[str, Any] = {"tag": tag, "predictor": predictor.describe()}
    with threadpool_limits(1):
        for size in (1, 16):
            batch = rows[:size]
            predictor.predict(batch)
            calls, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                predictor.predict(batch)
                calls += 1
            out[f"ms_per_row_at_{size}"] = round(1000 * (time.perf_counter() - started) / calls / size, 4)
    return out


def run(repo: Path, connections: list[int], rounds: int, duration_s: float, warmup_s: float,
        tool: str) -> dict[str, Any]:
    rows = workload.housing_rows(repo, 256)
    bodies = [workload.project_body(row) for row in rows]
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as scratch:
        servers = [ModeServer(Path(scratch) / mode, 1, CODE_ROOT, repo, mode=mode) for mode in ("off", "shadow")]
        runs: list[dict[str, Any]] = []
        try:
            for server in servers:
                server.start()
                server.wait_ready()
            for round_no in range(rounds):
                order = servers if round_no % 2 == 0 else servers[::-1]
                for count in connections:
                    for server in order:
                        url = server.url + server.predict_path
                        run_load(url, bodies, count, warmup_s, tool)
                        time.sleep(SETTLE_S)
                        before, shadowed = server.cpu_seconds(), server.shadow_rows()
                        result = run_load(url, bodies, count, duration_s, tool)
                        time.sleep(SETTLE_S)
                        cpu = server.cpu_seconds() - before
                        runs.append({"round": round_no, "mode": server.mode, "connections": count,
                                     "requests": result.requests, "non_2xx": result.non_2xx, "rps": result.rps,
                                     "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                                     "shadow_rows": server.shadow_rows() - shadowed,
                                     "cpu_ms_per_request": round(1000 * cpu / max(result.requests, 1), 3)})
                        print(f"round {round_no + 1} c={count:<3} {server.mode:<7} {result.rps:8.1f} req/s  "
                              f"cpu {runs[-1]['cpu_ms_per_request']:.3f} ms/request  non-2xx {result.non_2xx}",
                              file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
        floor = challenger_floor(repo, private_bentoml_home(Path(scratch) / "floor-home", repo), rows,
                                 min(duration_s, 3.0))
    return {"runs": runs, "summary": summarize(runs), "challenger_floor": floor}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for count in sorted({r["connections"] for r in runs}):
        def median(mode: str, key: str, count: int = count) -> float:
            return float(np.median([r[key] for r in runs if r["mode"] == mode and r["connections"] == count]))
        off, shadow = median("off", "cpu_ms_per_request"), median("shadow", "cpu_ms_per_request")
        # each round runs both modes back to back: its ratio is immune to the machine's speed drifting between
        # rounds (shared machine); the headline is the median of the rounds' ratios
        by_round = {(r["round"], r["mode"]): r["cpu_ms_per_request"] for r in runs if r["connections"] == count}
        ratios = [by_round[(n, "shadow")] / by_round[(n, "off")] for n in sorted({n for n, _ in by_round})
                  if by_round.get((n, "off")) and (n, "shadow") in by_round]
        out.append({"connections": count, "off_cpu_ms": off, "shadow_cpu_ms": shadow,
                    "ratio": round(float(np.median(ratios)), 3) if ratios else None,
                    "round_ratios": [round(r, 3) for r in ratios],
                    "off_rps": median("off", "rps"), "shadow_rps": median("shadow", "rps"),
                    "shadowed_share": round(sum(r["shadow_rows"] for r in runs if r["mode"] == "shadow"
                                                and r["connections"] == count)
                                            / max(1, sum(r["requests"] for r in runs if r["mode"] == "shadow"
                                                         and r["connections"] == count)), 3),
                    "non_2xx": sum(r["non_2xx"] for r in runs if r["connections"] == count)})
    return out


def markdown(results: dict[str, Any]) -> str:
    floor = results["challenger_floor"]
    lines = [f"Command: `{results['command']}`  ", f"Machine: {results['machine'].get('cpu', '?')}, "
             f"load average at start {results['load_average']}  ",
             f"Challenger {floor['tag']} ({floor['predictor'].get('kind', '?')}): floor "
             f"{floor['ms_per_row_at_1']} ms per row alone, {floor['ms_per_row_at_16']} ms per row in calls of 16",
             "", "| connections | off CPU ms/request | shadow CPU ms/request | shadow / off (median of rounds) "
             "| each round | off req/s | shadow req/s | shadowed | non-2xx |", "|---|---|---|---|---|---|---|---|---|"]
    for row in results["summary"]:
        rounds = ", ".join(f"{r:.2f}" for r in row["round_ratios"])
        lines.append(f"| {row['connections']} | {row['off_cpu_ms']:.3f} | {row['shadow_cpu_ms']:.3f} | "
                     f"{row['ratio']:.2f}x | {rounds} | {row['off_rps']:.0f} | {row['shadow_rps']:.0f} | "
                     f"{100 * row['shadowed_share']:.1f} % | {row['non_2xx']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shadow", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=CODE_ROOT, help="a reproduced pipeline")
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--tool", default="auto", help="wrk if installed, else the asyncio client")
    parser.add_argument("--smoke", action="store_true", help="1 round of 2 s at 4 connections")
    parser.add_argument("--out", type=Path, default=CODE_ROOT / "bench" / "shadow" / "results.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.connections, args.rounds, args.duration, args.warmup = "4", 1, 2.0, 0.5
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results = run(args.repo, [int(c) for c in args.connections.split(",")], args.rounds, args.duration,
                  args.warmup, args.tool)
    results.update(command="python -m bench.shadow " + " ".join(argv if argv is not None else sys.argv[1:]),
                   machine=describe(), load_average=load_at_start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    args.out.with_name("RESULTS.md").write_text("# Shadow mode's CPU per request\n\n" + report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
