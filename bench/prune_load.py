"""`make prune` on a 10-million-row log while a live server keeps logging: predict latency with and without it.

    python -m bench.prune_load --repo PATH [--store sqlite|postgresql] [--rows 10000000] [--prune-share 0.2]
                               [--rate 50] [--baseline-s 60]

The log is the rows a live server logged, repeated with times spread over the 20 hours before the run
(bench/biglog.py); `make prune`'s own command (`python -m prediction_log.prune --days D`) then deletes the oldest
`--prune-share` of it while the project's server (2 workers) logs to that same log and answers single-row
`/housing/predict` requests sent at a fixed `--rate` (an open loop: a slow answer does not slow the next
request). The requests sent before and after the prune are the run's own baseline; the ratio of the p99 of those
sent while it ran to that baseline is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import workload
from bench.biglog import build_postgres, build_sqlite, record_seed
from bench.machine import describe
from bench.servers import PostgresLoggingServer, ProjectServer

CODE_ROOT = Path(__file__).resolve().parent.parent
SPAN = timedelta(hours=20)


class PacedLoad:
    """Requests sent at a fixed rate from a thread of its own; (sent at, latency ms, status) of each."""

    def __init__(self, url: str, bodies: list[bytes], rate: float) -> None:
        self.url, self.bodies, self.rate = url, bodies, rate
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    async def _one(self, client: Any, body: bytes) -> None:
        sent = time.monotonic()
        try:
            response = await client.post(self.url, content=body, headers={"Content-Type": "application/json"})
            status = response.status_code
        except Exception:  # a failed request (refused, timed out) is a sample too
            status = 0
        self.samples.append((sent, 1000 * (time.monotonic() - sent), status))

    async def _run(self) -> None:
        import httpx

        tasks = set()
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            started, count = time.monotonic(), 0
            while not self._stop.is_set():
                due = started + count / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(self._one(client, self.bodies[count % len(self.bodies)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                count += 1
            await asyncio.gather(*tasks)


def summary(samples: list[tuple[float, float, int]]) -> dict[str, Any]:
    latencies = np.array([latency for _, latency, status in samples if status == 200])
    return {"requests": len(samples), "non_2xx": sum(1 for *_, status in samples if status != 200),
            **({f"p{q}_ms": round(float(np.percentile(latencies, q)), 2) for q in (50, 90, 99)} if len(latencies)
               else {}), "max_ms": round(float(latencies.max()), 2) if len(latencies) else None}


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    seed = record_seed(args.repo, scratch / "seed", CODE_ROOT)
    end = datetime.now(UTC)
    days = (1 - args.prune_share) * SPAN / timedelta(days=1)
    bodies = [workload.project_body(row) for row in workload.housing_rows(args.repo, 256)]
    context: Any = None
    if args.store == "postgresql":
        from bench.logstore import postgres_log

        context = postgres_log()
        url = context.__enter__()("prune_load")
        built = build_postgres(url, seed, args.rows, end, SPAN)
        server: ProjectServer = PostgresLoggingServer(scratch / "serve", 2, CODE_ROOT, args.repo, url)
        where = ["--log-url", url]
    else:
        server = ProjectServer(scratch / "serve", 2, CODE_ROOT, args.repo)
        built = build_sqlite(server.log_dir / "predictions.db", seed, args.rows, end, SPAN)
        where = ["--log-dir", str(server.log_dir)]
    print(f"log built: {built}", file=sys.stderr, flush=True)
    prune_command = [sys.executable, "-m", "prediction_log.prune", "--days", f"{days:.6f}", *where]
    try:
        server.start()
        server.wait_ready()
        load = PacedLoad(server.url + server.predict_path, bodies, args.rate)
        load.start()
        time.sleep(args.warmup_s)
        before_start = time.monotonic()
        time.sleep(args.baseline_s)
        prune_start = time.monotonic()
        pruned = subprocess.run(prune_command, cwd=CODE_ROOT, capture_output=True, text=True, check=False)
        prune_end = time.monotonic()
        time.sleep(args.baseline_s)
        after_end = time.monotonic()
        load.stop()
    finally:
        server.stop()
        if context is not None:
            context.__exit__(None, None, None)
    if pruned.returncode != 0:
        raise RuntimeError(f"prune failed: {pruned.stdout}{pruned.stderr}")
    without = [s for s in load.samples if before_start <= s[0] < prune_start or prune_end <= s[0] < after_end]
    during = [s for s in load.samples if prune_start <= s[0] < prune_end]
    result = {"without": summary(without), "during": summary(during)}
    result["p99_ratio"] = round(result["during"]["p99_ms"] / result["without"]["p99_ms"], 2)
    deleted = int(pruned.stdout.split("deleted ")[1].split()[0])
    return {"store": args.store, "rows": args.rows, "log": built, "prune_days": round(days, 4),
            "prune_command": shlex.join(["python", "-m", "prediction_log.prune", "--days", f"{days:.6f}",
                                         where[0], "..."]),
            "prune": {"deleted": deleted, "seconds": round(prune_end - prune_start, 1),
                      "rows_per_s": round(deleted / (prune_end - prune_start))},
            "rate": args.rate, **result}


def markdown(data: dict[str, Any]) -> str:
    without, during = data["without"], data["during"]
    return "\n".join([
        f"# make prune under load ({data['store']}, {data['rows']:,} rows)", "",
        f"Command: `{data['command']}`  ",
        f"Machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, load average at start "
        f"{data['machine']['load_average']}  ",
        f"Prune: `{data['prune_command']}` deleted {data['prune']['deleted']:,} rows in {data['prune']['seconds']} s "
        f"({data['prune']['rows_per_s']:,} rows/s) while the server (2 workers) answered and logged "
        f"{data['rate']} single-row /housing/predict requests per second.", "",
        "| requests sent | n | non-2xx | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|",
        *(f"| {label} | {s['requests']} | {s['non_2xx']} | {s.get('p50_ms')} | {s.get('p90_ms')} | {s.get('p99_ms')} | "
          f"{s['max_ms']} |" for label, s in (("without the prune (before and after)", without),
                                               ("while the prune ran", during))),
        "", f"p99 while pruning / without: **{data['p99_ratio']}x**", ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=CODE_ROOT)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--prune-share", type=float, default=0.2, help="the oldest share of the log to delete")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--baseline-s", type=float, default=60.0, help="seconds of load before and after the prune")
    parser.add_argument("--out-dir", type=Path, default=CODE_ROOT / "bench" / "prune-under-load")
    parser.add_argument("--scratch", type=Path)
    args = parser.parse_args(argv)
    args.repo = args.repo.resolve()
    machine = describe()
    os.environ.pop("PREDICTION_LOG_URL", None)
    with tempfile.TemporaryDirectory(prefix="bench-prune-", dir=args.scratch) as scratch:
        data = run(args, Path(scratch))
    data.update(command="python -m bench.prune_load " + shlex.join(argv if argv is not None else sys.argv[1:]),
                machine=machine)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"results-{args.store}.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out_dir / f"RESULTS-{args.store}.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
