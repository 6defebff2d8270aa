"""`make monitor` in one command: the drift monitor, then champion vs challenger on the feedback, one exit code.

    python -m monitoring.check (--task TASK | --all) [--since 24h] [--log-url URL | --log-dir DIR] [--out reports]
                               [--params params.yaml]

Both tools always run (monitoring/monitor.py, monitoring/performance.py). The exit code is the drift monitor's
when it is not 0 (1 drift, 2 nothing to judge, 3 a bug, 4 missing values), else the performance one's (0, 5 the
challenger is significantly better, 6 significantly worse, 2, 3): what `make monitor`, the scheduled workflow
(.github/workflows/drift-check.yml) and the CronJob (deploy/drift-check.yaml) act on.

`--all` checks every task params.yaml declares, in its order, one after the other, and exits with the code that
most needs acting on (`overall`): drift first, then the first other verdict or bug (3-6), then "nothing to judge"
(2), else 0. A verdict outranks a 2 so that a scheduler which retries 2 (the CronJob) never retries a verdict
away because another task had too few predictions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from domain.schema import task_names
from monitoring import monitor, performance
from monitoring.cli import TASK_HELP, declared_task

MEANINGS = {0: "no drift, no finding, no significant difference between the arms", 1: "drift",
            2: "nothing to judge", 3: "the monitor failed (a bug)", 4: "missing values",
            5: "the challenger is significantly better", 6: "the challenger is significantly worse"}


def combined(drift: int, arms: int) -> int:
    """The drift monitor's code unless it is 0, else the performance comparison's."""
    return drift if drift != 0 else arms


EXIT_OK, EXIT_DRIFT, EXIT_NOTHING_TO_JUDGE = 0, 1, 2


def overall(codes: list[int]) -> int:
    """One code for several tasks' codes, in task order: 1 if any drifted, else the first of 3-6 (a verdict or a
    bug), else 2 if any had nothing to judge, else 0."""
    if EXIT_DRIFT in codes:
        return EXIT_DRIFT
    acted_on = [code for code in codes if code not in (EXIT_OK, EXIT_NOTHING_TO_JUDGE)]
    if acted_on:
        return acted_on[0]
    return EXIT_NOTHING_TO_JUDGE if EXIT_NOTHING_TO_JUDGE in codes else EXIT_OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="exit codes: " + ", ".join(f"{code} {text}"
                                                                       for code, text in MEANINGS.items()))
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", type=declared_task, help=TASK_HELP)
    which.add_argument("--all", action="store_true", help="every declared task, one after the other")
    parser.add_argument("--since", help="only the last 30m / 24h / 7d (default: the whole log)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--log-url", help="as for monitoring.monitor")
    where.add_argument("--log-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def check(task: str, args: argparse.Namespace) -> int:
    """Run both tools on one task; their combined exit code, printed with its meaning."""
    common = ["--task", task, "--out", str(args.out), "--params", str(args.params)]
    common += ["--since", args.since] if args.since else []
    common += ["--log-url", args.log_url] if args.log_url else []
    common += ["--log-dir", str(args.log_dir)] if args.log_dir else []
    drift = monitor.main(common)
    sys.stdout.flush()
    arms = performance.main(common)
    code = combined(drift, arms)
    print(f"monitor {task}: exit {code} ({MEANINGS.get(code, 'unknown')})", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Check one task, or every declared one (`--all`); the exit code as the module docstring says."""
    args = parse_args(argv)
    if not args.all:
        return check(args.task, args)
    tasks = task_names()
    code = overall([check(task, args) for task in tasks])
    print(f"monitor {', '.join(tasks)}: exit {code} ({MEANINGS.get(code, 'unknown')})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
