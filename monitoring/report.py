"""Summarise the prediction log: volume, error rate, latency percentiles, prediction distribution.

    python -m monitoring.report [--log-dir logs] [--since 24h] [--json]

Reads the log through monitoring/logquery.py (read-only: safe against a running server). Every number is computed
by the store over the whole window, exactly: memory does not grow with the log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitoring.logquery import (
    LogProblem,
    add_location_arguments,
    location_from,
    logged_tasks,
    open_window,
    parse_since,
)
from monitoring.operations import operations, prediction_distribution
from prediction_log.location import LogLocation

SUMMARY_KEYS = ("requests", "predictions", "arms", "errors", "error_rate", "latency_ms")


def summarise(log: LogLocation | Path, since: str | None = None) -> dict[str, Any]:
    """Per-task summary of the log window. Raises LogProblem if there is no log."""
    summary: dict[str, Any] = {}
    for task in logged_tasks(log, since):
        with open_window(log, task, since) as window:
            ops = operations(window)
            distribution = prediction_distribution(window)
        entry = {key: ops[key] for key in SUMMARY_KEYS}
        entry["latency_ms"] = {k: v for k, v in entry["latency_ms"].items() if v is not None}
        if distribution:
            entry["prediction"] = distribution
        summary[task] = entry
    return summary


def render(summary: dict[str, Any]) -> str:
    if not summary:
        return "the prediction log has no requests in this period"
    lines = []
    for task, s in summary.items():
        lines.append(f"{task}: {s['requests']} requests, {s['predictions']} predictions, "
                     f"error rate {s['error_rate']:.2%} {s['errors'] or ''}".rstrip())
        if set(s.get("arms", {})) - {"champion"}:  # with a challenger answering (A/B)
            lines.append("  predictions per arm: " + ", ".join(f"{k} {v}" for k, v in s["arms"].items()))
        if s["latency_ms"]:
            lines.append("  latency ms: " + ", ".join(f"{k} {v}" for k, v in s["latency_ms"].items()))
        if "prediction" in s:
            lines.append("  predictions: " + ", ".join(f"{k} {v}" for k, v in s["prediction"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_location_arguments(parser)
    parser.add_argument("--since", help="only the last 30m / 24h / 7d")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        location = location_from(args)
        summary = summarise(location, parse_since(args.since))
    except LogProblem as exc:
        sys.exit(f"report: {exc}")
    print(json.dumps(summary, indent=2) if args.json else f"prediction log: {location}\n{render(summary)}")


if __name__ == "__main__":
    main()
