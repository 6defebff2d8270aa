"""Operations of a log window: volume, error rate, latency percentiles and predictions, in total and over time.

The one place these statistics are computed, by the store (monitoring/logquery.py): `make report` prints them
for every task, `make monitor` puts them beside the drift verdict. All of them are exact over the whole window
(counts, exact percentiles); what comes back from the store is a few rows per statistic, whatever the window's size.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.schema import SCHEMAS, Kind
from monitoring.logquery import Window, as_utc

# Bucket widths for the "over time" tables: the smallest that gives at most MAX_BUCKETS rows.
BUCKETS = (("1min", 60), ("5min", 300), ("15min", 900), ("1h", 3600), ("6h", 21600), ("1D", 86400))
MAX_BUCKETS = 48
PERCENTILES = (50, 90, 95, 99)
VALUE_PERCENTILES = (5, 25, 50, 75, 95)


def bucket_width(start: datetime, end: datetime) -> tuple[str, int]:
    """(name, seconds) of the smallest bucket that cuts [start, end] into at most MAX_BUCKETS."""
    span = max((end - start).total_seconds(), 1.0)
    for freq, seconds in BUCKETS:
        if span / seconds <= MAX_BUCKETS:
            return freq, seconds
    return BUCKETS[-1]


def _rounded(values: dict[float, float] | None) -> dict[str, float | None]:
    return {f"p{q}": (round(values[q], 2) if values else None) for q in PERCENTILES}


def _span(window: Window) -> list[datetime]:
    """The first and last time logged in the window (predictions and rejected requests): index lookups."""
    times = []
    for table in ("predictions", "request_errors"):
        source, args = window.where(table, answered=False)
        first, last = window.rows(f"SELECT (SELECT MIN(ts) {source}), (SELECT MAX(ts) {source})", args + args)[0]
        times += [as_utc(t) for t in (first, last) if t is not None]
    return times


def operations(window: Window) -> dict[str, Any]:
    """Volume, error rate and latency percentiles: in total and per time bucket.

    Latency is the service's own (request received -> prediction ready), one value per answered
    request (a batch's rows share it); rejected requests count for volume and error rate only.
    """
    times = _span(window)
    freq, seconds = bucket_width(min(times), max(times)) if times else (None, BUCKETS[0][1])
    bucket = window.dialect.epoch_bucket("ts", seconds)
    first_row = window.first_row()
    source, args = window.where()
    arm = "arm" if window.has_arms else "'champion'"
    by_model: dict[str, int] = {}
    by_arm: dict[str, int] = {}
    answered: dict[int, int] = {}
    for start, model, arm_name, n, first in window.rows(
            f"SELECT {bucket}, model, {arm}, COUNT(*), SUM(CASE WHEN {first_row[0]} THEN 1 ELSE 0 END) {source} "
            f"GROUP BY 1, 2{', 3' if window.has_arms else ''}", first_row[1] + args):
        by_model[model] = by_model.get(model, 0) + int(n)
        by_arm[arm_name] = by_arm.get(arm_name, 0) + int(n)
        answered[int(start)] = answered.get(int(start), 0) + int(first)
    source, args = window.where("request_errors")
    errors: dict[str, int] = {}
    rejected: dict[int, int] = {}
    for start, status, n in window.rows(f"SELECT {bucket}, status, COUNT(*) {source} GROUP BY 1, 2", args):
        errors[str(status)] = errors.get(str(status), 0) + int(n)
        rejected[int(start)] = rejected.get(int(start), 0) + int(n)
    first_rows, first_args = window.where(first_rows=True)
    latency = window.dialect.percentiles(window.rows, "latency_ms", first_rows, first_args, PERCENTILES,
                                         {None: sum(answered.values()), **answered}, bucket)
    total = sum(answered.values()) + sum(errors.values())
    return {
        "requests": total,
        "predictions": sum(by_model.values()),
        "errors": dict(sorted(errors.items(), key=lambda item: int(item[0]))),
        "error_rate": round(sum(errors.values()) / total, 4) if total else 0.0,
        "latency_ms": _rounded(latency.get(None)),
        "models": dict(sorted(by_model.items(), key=lambda item: (-item[1], item[0]))),
        # answered predictions per arm (champion; challenger in A/B mode); shadow rows are not traffic
        "arms": dict(sorted(by_arm.items())),
        "first": min(times).isoformat() if total else None,
        "last": max(times).isoformat() if total else None,
        "bucket": freq if total else None,
        "over_time": [{"start": datetime.fromtimestamp(start, UTC).isoformat(),
                       "requests": answered.get(start, 0) + rejected.get(start, 0), "errors": rejected.get(start, 0),
                       "error_rate": round(rejected.get(start, 0) / (answered.get(start, 0) + rejected.get(start, 0)),
                                           4),
                       "latency_ms": _rounded(latency.get(start))}
                      for start in sorted(set(answered) | set(rejected))
                      if answered.get(start, 0) + rejected.get(start, 0)],
    }


def prediction_distribution(window: Window) -> dict[str, Any]:
    """Numbers: mean and percentiles; classes (a logged {<target>: class, "probabilities"}): count per class."""
    schema = SCHEMAS[window.task]
    source, args = window.where()
    dialect = window.dialect
    if schema.kind is Kind.CLASSIFICATION:
        label = dialect.field("prediction")
        rows = window.rows(f"SELECT {label}, COUNT(*) {source} GROUP BY 1 ORDER BY 2 DESC, 1",
                           (dialect.field_arg(schema.target.name), *args))
        return {str(name): int(n) for name, n in rows}
    value = dialect.number("prediction")
    mean, n = window.rows(f"SELECT AVG({value}), COUNT(*) {source}", args)[0]
    if not n:
        return {}
    values = dialect.percentiles(window.rows, value, source, args, VALUE_PERCENTILES, {None: int(n)})[None]
    return {"mean": round(float(mean), 2), **{f"p{q}": round(values[q], 2) for q in VALUE_PERCENTILES}}
