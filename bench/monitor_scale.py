"""`make report` and `make monitor` over large windows: wall time and peak RSS by log size and store.

    python -m bench.monitor_scale --repo PATH [--sizes 1000000,10000000] [--pg-sizes 10000000] [--peer REV]

The logs are the rows a live `bentoml serve` of the project logged for real requests (bench/biglog.py), repeated
with their times spread over the 20 hours before the run, so `--since 24h` selects every row. Each tool runs as
a subprocess the way a user or a scheduler runs it (cwd the project, the served models' BentoML store), and its
peak RSS is the kernel's (os.wait4). Beside the large logs: the same commands on a small log (the floor: imports,
Evidently, the report page) and, at the smallest large size only, the previous release's report and drift monitor
(`--peer`, which read the whole window into pandas: about 2 KB per row). Memory at every size, and the 10M / 1M
wall-time ratio (how the cost grows), are what this measures; absolute times move with the machine.

Linux counts a child's peak RSS from its parent's at fork (exec records the old address space's high-water mark),
so everything large (the seed server's client, building the logs) runs in spawned processes of its own and this
process stays small: its own peak, recorded beside the results, is the floor below which a child's figure means
nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.biglog import Seed, build_postgres, build_sqlite, record_seed
from bench.machine import describe

CODE_ROOT = Path(__file__).resolve().parent.parent
SPAN = timedelta(hours=20)
FLOOR_ROWS = 20_000
TOOLS = {  # name -> arguments after `python -m`; {log} is --log-dir DIR or --log-url URL, {out} a scratch dir
    "make report": ["monitoring.report", "--since", "24h", "{log}"],
    "drift monitor": ["monitoring.monitor", "--task", "housing", "--since", "24h", "{log}", "--out", "{out}"],
    "make monitor": ["monitoring.check", "--task", "housing", "--since", "24h", "{log}", "--out", "{out}"],
}
PEER_TOOLS = ("make report", "drift monitor")


def run_tool(arguments: list[str], cwd: Path, env: dict[str, str], output: Path) -> dict[str, Any]:
    """Wall time, peak RSS (MB) and exit code of `python -m ...` as a child process."""
    started = time.perf_counter()
    with output.open("a") as sink:
        sink.write(f"$ python -m {shlex.join(arguments)}\n")
        sink.flush()
        process = subprocess.Popen([sys.executable, "-m", *arguments], cwd=cwd, env=env, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(process.pid, 0)
    return {"wall_s": round(time.perf_counter() - started, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "exit": os.waitstatus_to_exitcode(status)}


def arguments(tool: str, log: list[str], out: Path) -> list[str]:
    expanded: list[str] = []
    for part in TOOLS[tool]:
        expanded += log if part == "{log}" else [str(out) if part == "{out}" else part]
    return expanded


def peer_tree(rev: str, scratch: Path) -> Path:
    """The offline tools of the project at `rev` (git archive), to run as the previous release."""
    tree = scratch / f"peer-{rev}"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "monitoring", "domain", "prediction_log", "params.yaml"],
                             cwd=CODE_ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def measure(label: str, store: str, rows: int, log: list[str], tools: tuple[str, ...], root: Path,
            env: dict[str, str], scratch: Path, results: list[dict[str, Any]], rounds: int = 1) -> None:
    for tool in tools:
        for round_no in range(rounds):
            out = scratch / "reports" / f"{label}-{store}-{rows}"
            result = run_tool(arguments(tool, log, out), root, {**env, "PYTHONPATH": str(root)},
                              scratch / "tools.log")
            results.append({"code": label, "store": store, "rows": rows, "tool": tool, "round": round_no, **result})
            print(f"{label:<8} {store:<10} {rows:>10,} {tool:<14} {result['wall_s']:8.1f} s "
                  f"{result['peak_rss_mb']:7.0f} MB  exit {result['exit']}", file=sys.stderr, flush=True)


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)` in a spawned process of its own (a fresh interpreter): its memory never becomes ours."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_", "PREDICTION_LOG_"))}
    env["OMP_NUM_THREADS"] = "1"
    seed_dir = scratch / "seed"
    seed: Seed = in_child(record_seed, args.repo, seed_dir, CODE_ROOT)
    env["BENTOML_HOME"] = str(seed_dir / "project-w1" / "bentoml-home")  # the served models and their references
    end = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    sizes = sorted({FLOOR_ROWS, *args.sizes})
    logs: dict[int, dict[str, Any]] = {}
    for rows in sizes:
        path = scratch / f"sqlite-{rows}" / "predictions.db"
        started = time.perf_counter()
        logs[rows] = {**in_child(build_sqlite, path, seed, rows, end, SPAN),
                      "build_s": round(time.perf_counter() - started)}
        rounds = 2 if rows <= min(args.sizes) else 1
        measure("this", "sqlite", rows, ["--log-dir", str(path.parent)], tuple(TOOLS), CODE_ROOT, env, scratch,
                results, rounds)
        if args.peer and rows == min(args.sizes):
            measure(args.peer, "sqlite", rows, ["--log-dir", str(path.parent)], PEER_TOOLS,
                    peer_tree(args.peer, scratch), env, scratch, results)
        if rows > FLOOR_ROWS:
            path.unlink()  # the disk holds one large log at a time
    if args.pg_sizes:
        from bench.logstore import postgres_log

        with postgres_log() as new_database:
            for rows in args.pg_sizes:
                url = new_database(f"monitor_{rows}")
                started = time.perf_counter()
                logs[-rows] = {**in_child(build_postgres, url, seed, rows, end, SPAN),
                               "build_s": round(time.perf_counter() - started)}
                measure("this", "postgresql", rows, ["--log-url", url], tuple(TOOLS), CODE_ROOT, env, scratch,
                        results)
    return {"seed": {"requests": len(seed.requests), "rows": seed.rows, "errors": len(seed.errors)},
            "logs": {str(k): v for k, v in logs.items()}, "results": results,
            "orchestrator_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def markdown(data: dict[str, Any]) -> str:
    results = data["results"]
    lines = ["# make report and make monitor by window size", "",
             f"Command: `{data['command']}`  ", f"Machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, "
             f"load average at start {data['machine']['load_average']}  ",
             f"Seed: {data['seed']['rows']} prediction rows and {data['seed']['errors']} rejected requests logged by a "
             "live `bentoml serve`, repeated with times spread over 20 h; `--since 24h` selects them all.  ",
             f"Peak RSS is each tool's own (os.wait4); the bench process that forks them peaked at "
             f"{data['orchestrator_peak_rss_mb']:.0f} MB, the floor of that measure.", "",
             "| code | store | rows in the window | tool | wall s | peak RSS MB | exit | wall / this release's 1M |",
             "|---|---|---|---|---|---|---|---|"]
    smallest = min(r["rows"] for r in results if r["rows"] > FLOOR_ROWS) if any(
        r["rows"] > FLOOR_ROWS for r in results) else FLOOR_ROWS
    base = {(r["store"], r["tool"]): r["wall_s"] for r in results
            if r["code"] == "this" and r["rows"] == smallest and r["store"] == "sqlite" and r["round"] == 0}
    for r in results:
        ratio = r["wall_s"] / base[("sqlite", r["tool"])] if ("sqlite", r["tool"]) in base else None
        lines.append(f"| {r['code']} | {r['store']} | {r['rows']:,} | {r['tool']} | {r['wall_s']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['exit']} | {'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=CODE_ROOT, help="a reproduced pipeline repository to serve")
    parser.add_argument("--sizes", default="1000000,10000000", help="SQLite window sizes (prediction rows)")
    parser.add_argument("--pg-sizes", default="10000000", help="PostgreSQL window sizes; empty: none")
    parser.add_argument("--peer", default="", help="the previous release (a git revision) to measure beside it")
    parser.add_argument("--out-dir", type=Path, default=CODE_ROOT / "bench" / "monitor-scale")
    parser.add_argument("--scratch", type=Path, help="where the logs are built (default: a temp dir; tens of GB)")
    args = parser.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.pg_sizes = [int(x) for x in args.pg_sizes.split(",") if x]
    args.repo = args.repo.resolve()
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-", dir=args.scratch) as scratch:
        data = run(args, Path(scratch))
    data.update(command="python -m bench.monitor_scale " + shlex.join(argv if argv is not None else sys.argv[1:]),
                machine=machine)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out_dir / "RESULTS.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
