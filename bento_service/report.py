"""Summarise the prediction log: volume, error rate, latency percentiles, prediction distribution.

    python -m bento_service.report [--log-dir logs] [--since 24h] [--json]

Reads the SQLite log read-only, so it is safe against a running server.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bento_service.config import SETTINGS
from bento_service.prediction_log import DB_NAME

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str | None) -> str | None:
    """'24h' -> ISO timestamp of 24 hours ago (UTC); None -> no lower bound."""
    if not text:
        return None
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"--since must look like 30m, 24h or 7d, got {text!r}")
    delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    return (datetime.now(UTC) - delta).isoformat(timespec="microseconds")


def summarise(db_path: Path, since: str | None = None) -> dict[str, Any]:
    """Per-task summary of the log. Raises FileNotFoundError if there is no log yet."""
    if not db_path.is_file():
        raise FileNotFoundError(f"no prediction log at {db_path}: has the service answered any request yet?")
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        where, args = ("WHERE ts >= ?", (since,)) if since else ("", ())
        predictions = db.execute(
            f"SELECT task, request_id, latency_ms, prediction FROM predictions {where}", args).fetchall()
        errors = db.execute(f"SELECT task, status FROM request_errors {where}", args).fetchall()
    tasks = sorted({row[0] for row in predictions} | {row[0] for row in errors})
    summary: dict[str, Any] = {}
    for task in tasks:
        rows = [r for r in predictions if r[0] == task]
        requests = {r[1]: r[2] for r in rows}  # one latency per request (a batch shares one)
        failed = Counter(status for t, status in errors if t == task)
        total = len(requests) + sum(failed.values())
        latencies = np.array(list(requests.values()), dtype=float)
        entry: dict[str, Any] = {
            "predictions": len(rows),
            "requests": total,
            "errors": dict(sorted(failed.items())),
            "error_rate": round(sum(failed.values()) / total, 4) if total else 0.0,
            "latency_ms": {f"p{q}": round(float(np.percentile(latencies, q)), 2) for q in (50, 90, 95, 99)}
            if len(latencies) else {},
        }
        values = [json.loads(r[3]) for r in rows]
        if values and isinstance(values[0], (int, float)):
            numbers = np.array(values, dtype=float)
            entry["prediction"] = {"mean": round(float(numbers.mean()), 2),
                                   **{f"p{q}": round(float(np.percentile(numbers, q)), 2) for q in (5, 25, 50, 75, 95)}}
        elif values:
            entry["prediction"] = dict(Counter(v["species"] for v in values).most_common())
        summary[task] = entry
    return summary


def render(summary: dict[str, Any]) -> str:
    if not summary:
        return "the prediction log has no requests in this period"
    lines = []
    for task, s in summary.items():
        lines.append(f"{task}: {s['requests']} requests, {s['predictions']} predictions, "
                     f"error rate {s['error_rate']:.2%} {s['errors'] or ''}".rstrip())
        if s["latency_ms"]:
            lines.append("  latency ms: " + ", ".join(f"{k} {v}" for k, v in s["latency_ms"].items()))
        if "prediction" in s:
            lines.append("  predictions: " + ", ".join(f"{k} {v}" for k, v in s["prediction"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, default=SETTINGS.log_dir)
    parser.add_argument("--since", help="only the last 30m / 24h / 7d")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        summary = summarise(args.log_dir / DB_NAME, parse_since(args.since))
    except (FileNotFoundError, ValueError, sqlite3.Error) as exc:
        sys.exit(f"report: {exc}")
    print(json.dumps(summary, indent=2) if args.json else render(summary))


if __name__ == "__main__":
    main()
