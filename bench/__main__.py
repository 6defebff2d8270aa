"""`python -m bench`: run the benchmarks, write the raw JSON and the Markdown report.

    python -m bench                      # full run: bench/results.json and bench/RESULTS.md
    python -m bench --smoke              # seconds per server, into .artifacts/bench-smoke/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench import logstore, machine, pipeline, report, workload
from bench.loadgen import available_tool
from bench.serving import ServingPlan, run_serving

CODE_ROOT = Path(__file__).resolve().parent.parent


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run: 1 round, short runs, w1, no full pipeline")
    parser.add_argument("--repo", type=Path, default=CODE_ROOT,
                        help="a reproduced pipeline repository: its models, data and mlflow.db are served")
    parser.add_argument("--out-dir", type=Path, help="where results.json and RESULTS.md go (default: bench/, "
                                                      "or .artifacts/bench-smoke/ with --smoke)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, help="seconds of discarded warm-up per run")
    parser.add_argument("--connections", type=_ints)
    parser.add_argument("--workers", type=_ints)
    parser.add_argument("--peers", default="mlflow,seed,docs",
                        help="comma-separated: mlflow, seed, docs (bench/docs_peer.py), pg (the project logging to "
                             "a PostgreSQL the bench starts; bench/logstore.py); empty: none")
    parser.add_argument("--serving-peer", metavar="REV", help="also serve the project's service at this git "
                        "revision (e.g. main: today's service) on the same models, interleaved with this tree's")
    parser.add_argument("--tool", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument("--target", help="bentoml serve target for the project (default: the dev service; "
                                         "e.g. a Bento tag from .bento-tag)")
    parser.add_argument("--pipeline", choices=("full", "noop", "none"), help="full: clean-copy repro, no-op, "
                        "one-candidate change (minutes); noop: no-op repro of --repo; default full (smoke: noop)")
    parser.add_argument("--no-serving", action="store_true")
    parser.add_argument("--housing-csv", type=Path, default=None,
                        help="raw data for the full pipeline run (default: $HOUSING_CSV)")
    parser.add_argument("--pipeline-rounds", type=int, help="full repros, each from a new clean copy "
                        "(default 3; smoke 1); also the number of one-candidate changes")
    parser.add_argument("--pipeline-peer", metavar="REV", help="also measure the pipeline at this git revision "
                        "of the project (e.g. the commit before a change), interleaved with this tree's runs")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="run N busy-loop processes during the pipeline measurements: the budgets on a machine "
                             "whose cores other jobs are using (default 0)")
    parser.add_argument("--pipeline-code", type=Path, default=CODE_ROOT,
                        help="the repository whose tracked files the full pipeline run copies (default: this "
                             "project; the smoke test passes a small, fast pipeline)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.rounds = args.rounds or (1 if smoke else 3)
    args.duration = args.duration or (2.0 if smoke else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if smoke else 2.0)
    args.connections = args.connections or ([4] if smoke else [1, 16, 32])
    args.workers = args.workers or ([1] if smoke else [1, 2])
    args.pipeline = args.pipeline or ("noop" if smoke else "full")
    args.pipeline_rounds = args.pipeline_rounds or (1 if smoke else 3)
    args.out_dir = args.out_dir or (CODE_ROOT / ".artifacts" / "bench-smoke" if smoke else CODE_ROOT / "bench")
    args.repo = args.repo.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    tool = available_tool(args.tool)
    results: dict = {
        "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "config": {"smoke": args.smoke, "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                   "batch_duration_s": args.duration / 2, "connections": args.connections, "workers": args.workers,
                   "peers": [p for p in args.peers.split(",") if p], "tool": tool, "repo": str(args.repo)},
        "commands": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch, contextlib.ExitStack() as stack:
        scratch_dir = Path(scratch)
        new_log_database = None
        if not args.no_serving and "pg" in results["config"]["peers"]:
            new_log_database = stack.enter_context(logstore.postgres_log())
        if not args.no_serving:
            print(f"serving: {tool}, rounds={args.rounds}, {args.duration:g} s per run", flush=True)
            plan = ServingPlan(code_root=CODE_ROOT, repo=args.repo, work_dir=scratch_dir / "serving",
                               workers=args.workers, connections=args.connections,
                               peers=results["config"]["peers"], rounds=args.rounds, duration_s=args.duration,
                               warmup_s=args.warmup, batch_duration_s=args.duration / 2,
                               batch_rows=50 if args.smoke else 1000, tool=tool, project_target=args.target,
                               serving_peer=args.serving_peer, floor_rows=(1, 16, 50 if args.smoke else 1000),
                               new_log_database=new_log_database, log=lambda line: print(line, flush=True))
            results["config"]["batch_rows"] = plan.batch_rows
            results["config"]["serving_peer"] = args.serving_peer
            results["serving"] = run_serving(plan)
            results["log_writer"] = logstore.measure_writers(scratch_dir, workload.housing_rows(args.repo, 1)[0],
                                                             new_log_database and new_log_database("bench_writer"),
                                                             seconds=1.0 if args.smoke else 5.0)
            for item in results["log_writer"]:
                print(f"  log writer {item['store']:<10} {item['rows_per_s']:9d} rows/s in groups of "
                      f"{item['rows_per_group']} ({item['ms_per_group']} ms each)", flush=True)
            results["commands"] += _serving_commands(results["config"], args.target, args.serving_peer)
        if args.pipeline == "full":
            csv = args.housing_csv or Path(os.environ.get("HOUSING_CSV") or "housing.csv")
            results["config"]["background_load"] = args.background_load
            rounds = args.pipeline_rounds
            print(f"pipeline: {rounds} full repro(s) in scratch copies with HOUSING_CSV={csv}", flush=True)
            with background_load(args.background_load):
                results["pipeline"] = pipeline.measure_full(
                    args.pipeline_code.resolve(), scratch_dir / "pipeline", csv, rounds=rounds, changes=rounds,
                    peer=args.pipeline_peer, log=lambda line: print(line, flush=True))
            results["commands"] += [f"HOUSING_CSV={csv} dvc repro    # x{rounds}, each in a new scratch copy: "
                                    "git ls-files, git init", "dvc repro    # x5, no-op",
                                    "dvc repro    # after each of " + results["pipeline"]["one_candidate"]["change"],
                                    "dvc repro    # after reverting"]
            if args.pipeline_peer:
                results["commands"].append(f"# the same, interleaved, in copies of `git archive {args.pipeline_peer}`")
            if args.background_load:
                results["commands"].append(f"{sys.executable} -c 'while True: pass'    # x{args.background_load}, "
                                           "running during every pipeline measurement")
        elif args.pipeline == "noop":
            print(f"pipeline: no-op repro in {args.repo}", flush=True)
            results["pipeline"] = pipeline.measure_noop_only(args.repo)
            results["commands"] += [f"cd {args.repo} && dvc repro    # no-op, x3"]
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    notes = args.out_dir.resolve() == (CODE_ROOT / "bench").resolve()  # bench/NOTES.md goes with bench/RESULTS.md
    (args.out_dir / "RESULTS.md").write_text(report.render(results, notes=notes))
    print(f"wrote {args.out_dir / 'results.json'} and {args.out_dir / 'RESULTS.md'}")
    return 0


@contextlib.contextmanager
def background_load(processes: int) -> Iterator[None]:
    """`processes` CPU-bound busy loops for the duration of the block (other tenants' jobs, made repeatable)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _serving_commands(config: dict, target: str | None, serving_peer: str | None) -> list[str]:
    peer = ([f"# --serving-peer {serving_peer}: the same bentoml serve, from `git archive {serving_peer}` unpacked, "
             "on the same private BENTOML_HOME models"] if serving_peer else [])
    return [*peer,
        f"OMP_NUM_THREADS=1 WORKERS=N PREDICTION_LOG_DIR=<tmp> BENTOML_HOME=<private> "
        f"bentoml serve {target or 'bento_service.service:PredictionService'} --host 127.0.0.1 --port P",
        "OMP_NUM_THREADS=1 MLFLOW_TRACKING_URI=sqlite:///<repo>/mlflow.db PATH=.venv/bin:$PATH "
        "mlflow models serve -m models:/housing-regressor@champion --env-manager local --workers N "
        "--host 127.0.0.1 --port P",
        "OMP_NUM_THREADS=1 WORKERS=N DOCS_PEER_LOG_DIR=<tmp> BENTOML_HOME=<private> "
        "bentoml serve bench.docs_peer:HousingDocsPeer --host 127.0.0.1 --port P",
        "OMP_NUM_THREADS=1 SEED_MODEL=models/housing/champion.joblib SEED_DB=<tmp> "
        "python -m uvicorn bench.seed_app:app --workers N --host 127.0.0.1 --port P",
        (f"wrk -t1 -cC -d{config['duration_s']:g}s --timeout 30s -s bench/post.lua URL -- <bodies.jsonl>"
         if config["tool"] == "wrk" else "asyncio client (bench/loadgen.py), C keep-alive connections"),
    ]


if __name__ == "__main__":
    sys.exit(main())
