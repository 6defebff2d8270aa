"""Operations of a log window: volume, error rate, latency percentiles and predictions, in total and over time.

The one place these statistics are computed: `make report` prints them for every task, `make monitor`
puts them beside the drift verdict.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from monitoring.logquery import LogWindow

# Bucket widths for the "over time" tables: the smallest that gives at most MAX_BUCKETS rows.
BUCKETS = (("1min", 60), ("5min", 300), ("15min", 900), ("1h", 3600), ("6h", 21600), ("1D", 86400))
MAX_BUCKETS = 48
PERCENTILES = (50, 90, 95, 99)
VALUE_PERCENTILES = (5, 25, 50, 75, 95)


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
        # answered predictions per arm (champion; challenger in A/B mode); shadow rows are not traffic
        "arms": {str(k): int(v) for k, v in sorted(window.predictions["arm"].value_counts().items())},
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


def prediction_distribution(window: LogWindow) -> dict[str, Any]:
    """Numbers: mean and percentiles; classes (a logged {<target>: class, "probabilities"}): count per class."""
    values = list(window.predictions["prediction"])
    if not values:
        return {}
    if isinstance(values[0], dict):
        field = next(key for key in values[0] if key != "probabilities")
        return dict(Counter(v[field] for v in values).most_common())
    numbers = np.asarray(values, dtype=float)
    return {"mean": round(float(numbers.mean()), 2),
            **{f"p{q}": round(float(np.percentile(numbers, q)), 2) for q in VALUE_PERCENTILES}}
