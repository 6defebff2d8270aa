"""Paired A/B of this tree's service against another revision's, for small differences on a noisy machine.

`python -m bench.paired --repo R --peer REV --connections C --pairs N`: both servers (one worker each, the same
models, bench/servers.py) take N pairs of short closed-loop runs in alternating order; what is reported is the
median and quartiles of the within-pair ratios (throughput, p50, server CPU per request). Slow drifts of the
shared machine hit both halves of a pair alike, so the ratios are tighter than those of `python -m bench`'s rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import workload
from bench.loadgen import run_load
from bench.servers import ProjectServer, ServingPeerServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def measure(server: Any, bodies: list[bytes], connections: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, server CPU ms per request) of one run."""
    url = f"http://127.0.0.1:{server.port}{server.predict_path}"
    cpu_before = server.cpu_seconds()
    result = run_load(url, bodies, connections, seconds)
    return result.rps, result.p50_ms, 1000 * (server.cpu_seconds() - cpu_before) / max(result.requests, 1)


def quartiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3), "q1": round(ordered[len(ordered) // 4], 3),
            "q3": round(ordered[(3 * len(ordered)) // 4], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a reproduced pipeline repository")
    parser.add_argument("--peer", required=True, help="git revision of the service to compare against")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    args = parser.parse_args()

    rows = workload.housing_rows(args.repo, 200)
    with tempfile.TemporaryDirectory() as work:
        servers = [ProjectServer(Path(work) / "project", 1, PROJECT_ROOT, args.repo),
                   ServingPeerServer(Path(work) / "peer", 1, PROJECT_ROOT, args.repo, args.peer)]
        bodies = {server.name: [server.body(row) for row in rows] for server in servers}
        ratios: dict[str, list[float]] = {"throughput": [], "p50": [], "cpu_per_request": []}
        try:
            for server in servers:
                server.start()
                server.wait_ready()
                measure(server, bodies[server.name], args.connections, args.seconds)  # warm-up
            for pair in range(args.pairs):
                order = servers if pair % 2 == 0 else servers[::-1]
                runs = {server.name: measure(server, bodies[server.name], args.connections, args.seconds)
                        for server in order}
                ours, theirs = runs["project"], runs["serving-peer"]
                for key, index in (("throughput", 0), ("p50", 1), ("cpu_per_request", 2)):
                    ratios[key].append(ours[index] / theirs[index])
        finally:
            for server in servers:
                server.stop()
    print(json.dumps({"peer": args.peer, "connections": args.connections, "pairs": args.pairs,
                      "project_over_peer": {key: quartiles(values) for key, values in ratios.items()}}, indent=2))


if __name__ == "__main__":
    main()
