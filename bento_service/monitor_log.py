"""Read one task's slice of the prediction log, and summarise its operations over time.

Part of `make monitor` (bento_service/monitor.py); not in the serving image. Reads SQLite
read-only, so it is safe against a running server.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bento_service.prediction_log import DB_NAME

# Bucket widths for the "over time" tables: the smallest that gives at most MAX_BUCKETS rows.
BUCKETS = (("1min", 60), ("5min", 300), ("15min", 900), ("1h", 3600), ("6h", 21600), ("1D", 86400))
MAX_BUCKETS = 48
PERCENTILES = (50, 90, 95, 99)


class LogProblem(Exception):
    """The log cannot answer the question (missing, unreadable, nothing in the window)."""


@dataclass(frozen=True)
class LogWindow:
    task: str
    since: str | None
    predictions: pd.DataFrame  # ts, request_id, model, inputs (dict), prediction (JSON value), latency_ms
    errors: pd.DataFrame       # ts, request_id, status, latency_ms


def read_window(log_dir: Path, task: str, since: str | None) -> LogWindow:
    """Predictions and rejected requests of `task` logged at or after `since` (ISO UTC; None: all)."""
    db_path = Path(log_dir) / DB_NAME
    if not db_path.is_file():
        raise LogProblem(f"no prediction log at {db_path}: has the service answered any request yet? "
                         "(set --log-dir or PREDICTION_LOG_DIR to the service's log directory)")
    where, args = "WHERE task = ?" + (" AND ts >= ?" if since else ""), (task, since) if since else (task,)
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            predictions = pd.read_sql_query(
                f"SELECT ts, request_id, model, inputs, prediction, latency_ms FROM predictions {where} ORDER BY id",
                db, params=args)
            errors = pd.read_sql_query(
                f"SELECT ts, request_id, status, latency_ms FROM request_errors {where} ORDER BY id", db, params=args)
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise LogProblem(f"cannot read the prediction log {db_path}: {exc}") from None
    predictions["inputs"] = [json.loads(text) for text in predictions["inputs"]]
    predictions["prediction"] = [json.loads(text) for text in predictions["prediction"]]
    for frame in (predictions, errors):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return LogWindow(task, since, predictions, errors)


def _requests(window: LogWindow) -> pd.DataFrame:
    """One row per request: answered (first prediction row of its request id) or rejected."""
    answered = window.predictions.drop_duplicates("request_id")[["ts", "request_id", "latency_ms"]]
    answered = answered.assign(status=200)
    rejected = window.errors[["ts", "request_id", "latency_ms", "status"]]
    frames = [f for f in (answered, rejected) if not f.empty]
    if not frames:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[ns, UTC]"), "request_id": [], "latency_ms": [],
                             "status": []})
    return pd.concat(frames, ignore_index=True).sort_values("ts")


def _percentiles(latencies: pd.Series) -> dict[str, float | None]:
    values = latencies.to_numpy(dtype=float)
    return {f"p{q}": (round(float(np.percentile(values, q)), 2) if len(values) else None) for q in PERCENTILES}


def bucket_width(start: pd.Timestamp, end: pd.Timestamp) -> str:
    span = max((end - start).total_seconds(), 1.0)
    for freq, seconds in BUCKETS:
        if span / seconds <= MAX_BUCKETS:
            return freq
    return BUCKETS[-1][0]


def operations(window: LogWindow) -> dict[str, Any]:
    """Volume, error rate and latency percentiles: in total and per time bucket.

    Latency is the service's own (request received -> prediction ready), one value per answered
    request (a batch's rows share it); rejected requests count for volume and error rate only.
    """
    requests = _requests(window)
    answered = requests[requests["status"] == 200]
    total = len(requests)
    summary: dict[str, Any] = {
        "requests": total,
        "predictions": len(window.predictions),
        "errors": {str(k): int(v) for k, v in sorted(requests.loc[requests["status"] != 200, "status"]
                                                     .astype(int).value_counts().items())},
        "error_rate": round(float((requests["status"] != 200).mean()), 4) if total else 0.0,
        "latency_ms": _percentiles(answered["latency_ms"]),
        "models": {str(k): int(v) for k, v in window.predictions["model"].value_counts().items()},
        "first": requests["ts"].min().isoformat() if total else None,
        "last": requests["ts"].max().isoformat() if total else None,
        "bucket": None,
        "over_time": [],
    }
    if not total:
        return summary
    freq = bucket_width(requests["ts"].min(), requests["ts"].max())
    summary["bucket"] = freq
    for start, group in requests.groupby(requests["ts"].dt.floor(freq)):
        ok = group[group["status"] == 200]
        summary["over_time"].append({
            "start": start.isoformat(),
            "requests": len(group),
            "errors": int((group["status"] != 200).sum()),
            "error_rate": round(float((group["status"] != 200).mean()), 4),
            "latency_ms": _percentiles(ok["latency_ms"]),
        })
    return summary


def since_label(since: str | None) -> str:
    return f"since {since}" if since else "in the whole log"

