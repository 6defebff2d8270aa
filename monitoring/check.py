"""`make monitor` in one command: the drift monitor, then champion vs challenger on the feedback, one exit code.

    python -m monitoring.check --task housing [--since 24h] [--log-url URL | --log-dir DIR] [--out reports]
                               [--params params.yaml]

Both tools always run (monitoring/monitor.py, monitoring/performance.py). The exit code is the drift monitor's
when it is not 0 (1 drift, 2 nothing to judge, 3 a bug, 4 missing values), else the performance one's (0, 5 the
challenger is significantly better, 6 significantly worse, 2, 3): what `make monitor`, the scheduled workflow
(.github/workflows/drift-check.yml) and the CronJob (deploy/drift-check.yaml) act on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from domain.schema import TASKS
from monitoring import monitor, performance

MEANINGS = {0: "no drift, no finding, no significant difference between the arms", 1: "drift",
            2: "nothing to judge", 3: "the monitor failed (a bug)", 4: "missing values",
            5: "the challenger is significantly better", 6: "the challenger is significantly worse"}


def combined(drift: int, arms: int) -> int:
    """The drift monitor's code unless it is 0, else the performance comparison's."""
    return drift if drift != 0 else arms


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="exit codes: " + ", ".join(f"{code} {text}"
                                                                       for code, text in MEANINGS.items()))
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--since", help="only the last 30m / 24h / 7d (default: the whole log)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--log-url", help="as for monitoring.monitor")
    where.add_argument("--log-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run both tools; their combined exit code."""
    args = parse_args(argv)
    common = ["--task", args.task, "--out", str(args.out), "--params", str(args.params)]
    common += ["--since", args.since] if args.since else []
    common += ["--log-url", args.log_url] if args.log_url else []
    common += ["--log-dir", str(args.log_dir)] if args.log_dir else []
    drift = monitor.main(common)
    sys.stdout.flush()
    arms = performance.main(common)
    code = combined(drift, arms)
    print(f"monitor {args.task}: exit {code} ({MEANINGS.get(code, 'unknown')})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
