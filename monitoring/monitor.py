"""`make monitor`: drift, latency and error report of one task's prediction log.

    python -m monitoring.monitor --task TASK [--since 24h] [--log-dir logs] [--out reports]
                                    [--reference models/TASK/reference.json] [--params params.yaml]
                                    [--sample-rows 20000] [--seed 42]

Writes <out>/<task>-monitor.html (verdict, per-column drift, missing values, traffic/latency/errors
over time, Evidently's reference-vs-current distributions) and <out>/<task>-monitor.json, and exits:

    0  no drift and no data-quality finding
    1  drift: the share of drifted features reached monitoring.report.drift_share, or the
       predictions drifted (thresholds in params.yaml, `monitoring.report`); whatever the data quality
    2  nothing to judge: no log, no predictions in the window, not enough predictions yet (fewer than
       min_rows: how many there are and how to get more), no reference profile, bad arguments; a
       message on stderr, no report
    3  the monitor itself failed (a bug: traceback on stderr); never confused with "drift"
    4  no drift, but a data-quality finding: a feature is missing more often than in the reference
       by at least monitoring.report.missing_share ("100 % missing (reference 0 %)")

Drift is judged on the values that were sent; a feature with fewer than min_rows values sent is
reported as not judged. Drift and missing values are judged on a seeded uniform sample of the window drawn by
the store (`monitoring.report.sample_rows`, `sample_seed`; monitoring/sample.py), counts, error rates and
latency percentiles are exact over the whole window: memory stays flat however large the window is, and the
report states the window's size, the sample's and how it was drawn.

A scheduler (cron, CI) alerts on a non-zero exit. The reference is the profile packaged
with the model that made the newest prediction in the window (BentoML model store), else
models/<task>/reference.json, or --reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitoring.cli import add_task_argument, guarded, read_settings
from monitoring.data_quality import MissingValues, flagged
from monitoring.logquery import (
    LogProblem,
    add_location_arguments,
    location_from,
    open_window,
    parse_since,
    since_label,
)
from monitoring.operations import operations
from monitoring.sample import Sample, draw

EXIT_OK, EXIT_DRIFT, EXIT_DATA_QUALITY = 0, 1, 4  # 2 and 3: monitoring/cli.py


def load_reference(task: str, newest: str, path: Path | None) -> tuple[dict[str, Any], str]:
    """(profile, where it came from); `newest` is the model tag of the window's newest prediction. Raises
    LogProblem when there is none."""
    if path is not None:
        if not path.is_file():
            raise LogProblem(f"reference profile {path} does not exist")
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    profile = _packaged_profile(newest)
    if profile is not None:
        return profile, f"model store, {newest}"
    fallback = Path("models") / task / "reference.json"
    if fallback.is_file():
        return json.loads(fallback.read_text(encoding="utf-8")), f"{fallback} ({newest} is not in the model store)"
    raise LogProblem(f"no reference profile: {newest} is not in the BentoML model store and {fallback} does not "
                     "exist; run `dvc repro` or pass --reference")


def _packaged_profile(tag: str) -> dict[str, Any] | None:
    """The profile the `package` stage attached to a model, if that model is in the local store."""
    import bentoml
    from bentoml.exceptions import BentoMLException

    try:
        return bentoml.models.get(tag).custom_objects.get("reference")
    except (BentoMLException, ValueError):
        return None


def not_enough(task: str, n: int, needed: int, window: str | None) -> str:
    """Too few predictions to judge (`window`: the --since given): how many there are, how many are needed, and how
    to get there."""
    where = f"in the last {window}" if window else "in the whole log"
    return (f"not enough predictions yet: {n} {task} prediction{'s' if n != 1 else ''} {where}, {needed} are needed "
            f"to judge drift (monitoring.report.min_rows). Send the service more traffic (POST /{task}/predict; "
            "`make demo` sends the test split to a running server), "
            "widen the window (--since 7d; make monitor SINCE=7d), or lower min_rows in params.yaml")


def verdict_of(drifted: bool, missing: list[str]) -> tuple[str, int]:
    """(verdict, exit code): drift wins over a data-quality finding; either is non-zero for a scheduler."""
    if drifted:
        return "drift", EXIT_DRIFT
    if missing:
        return "missing values", EXIT_DATA_QUALITY
    return "no drift", EXIT_OK


def build_summary(task: str, since: str | None, ops: dict[str, Any], sample: Sample, profile: dict[str, Any],
                  source: str, settings: Any, drift: Any, missing: dict[str, MissingValues]) -> dict[str, Any]:
    """The JSON summary: per-column drift, missing values, verdict, exit code, counts, the sample and operations."""
    drifted = drift.drift_share >= settings.drift_share or drift.prediction.drifted
    verdict, exit_code = verdict_of(drifted, flagged(missing))
    return {
        "task": task,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since,
        "window": since_label(since),
        "sample": sample.describe(),
        "verdict": verdict,
        "exit_code": exit_code,
        "drifted_features": drift.drifted_features,
        "drift_share": round(drift.drift_share, 4),
        "features": {name: column.as_dict() for name, column in drift.features.items()},
        "not_judged": drift.not_judged,
        "prediction": drift.prediction.as_dict(),
        "data_quality": {"missing_features": flagged(missing), "threshold": settings.missing_share,
                         "missing": {name: finding.as_dict() for name, finding in missing.items()}},
        "counts": {key: ops[key] for key in ("requests", "predictions", "errors", "error_rate")},
        "reference": {"source": source, "training_rows": profile["training_rows"],
                      "sample_rows": len(profile["sample"]["prediction"])},
        "settings": {"method": settings.method, "threshold": settings.threshold,
                     "drift_share": settings.drift_share, "min_rows": settings.min_rows,
                     "missing_share": settings.missing_share, "sample_rows": settings.sample_rows,
                     "sample_seed": settings.sample_seed},
        "operations": ops,
    }


def run(args: argparse.Namespace) -> int:
    from monitoring.data_quality import missing_values
    from monitoring.evidently_drift import DriftSettings, frames, measure
    from monitoring.html import render

    started = time.perf_counter()
    settings = read_settings(args.params, "monitoring.report", DriftSettings.from_params)
    settings = replace(settings, sample_rows=args.sample_rows or settings.sample_rows,
                       sample_seed=settings.sample_seed if args.seed is None else args.seed)
    since = parse_since(args.since)
    location = location_from(args)
    with open_window(location, args.task, since) as window:
        ops = operations(window)
        n = ops["predictions"]
        if n == 0:
            rejected = f" ({ops['requests']} rejected requests)" if ops["requests"] else ""
            raise LogProblem(f"no {args.task} predictions {since_label(since)} in {location}{rejected}")
        if n < settings.min_rows:
            raise LogProblem(not_enough(args.task, n, settings.min_rows, args.since))
        newest = window.newest_model()
        assert newest is not None
        sample = draw(window, settings.sample_rows, settings.sample_seed, n)
    profile, source = load_reference(args.task, newest, args.reference)
    reference, current, numeric, categorical = frames(profile, sample.rows)
    missing = missing_values(reference, current, list(profile["features"]), settings.missing_share)
    drift = measure(reference, current, numeric, categorical, settings)
    summary = build_summary(args.task, since, ops, sample, profile, source, settings, drift, missing)

    args.out.mkdir(parents=True, exist_ok=True)
    html_path, json_path = args.out / f"{args.task}-monitor.html", args.out / f"{args.task}-monitor.json"
    html_path.write_text(render(summary, drift.html), encoding="utf-8")
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    judged = "every one" if sample.whole else f"a uniform sample of {len(sample.rows)} (seed {sample.seed})"
    print(f"monitor {args.task}: {summary['verdict']} ({len(drift.drifted_features)} of {len(drift.features)} "
          f"features drifted{': ' + ', '.join(drift.drifted_features) if drift.drifted_features else ''}; "
          f"prediction {'drifted' if drift.prediction.drifted else 'ok'}) over {n} predictions "
          f"{summary['window']} ({judged} judged); error rate {ops['error_rate']:.2%}, "
          f"latency p95 {ops['latency_ms']['p95']} ms")
    for name in flagged(missing):
        print(f"  data quality: {name} {missing[name].message}")
    for name, reason in drift.not_judged.items():
        print(f"  drift of {name} {reason}")
    print(f"  prediction log: {location}\n  report: {html_path}\n  summary: {json_path}\n"
          f"  ({time.perf_counter() - started:.1f} s)")
    return summary["exit_code"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="exit codes: 0 no drift, 1 drift, 2 nothing to judge (message on "
                                            "stderr), 3 internal error, 4 missing values beyond "
                                            "monitoring.report.missing_share (no drift)")
    add_task_argument(parser)
    parser.add_argument("--since", help="only the last 30m / 24h / 7d (default: the whole log)")
    add_location_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--reference", type=Path, help="a reference.json instead of the served model's profile")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="thresholds: monitoring.report")
    parser.add_argument("--sample-rows", type=_positive, help="rows of the window judged for drift and missing "
                        "values (default: monitoring.report.sample_rows)")
    parser.add_argument("--seed", type=int, help="the sample's seed (default: monitoring.report.sample_seed)")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: exit codes as in the module docstring; problems and bugs as monitoring/cli.py says."""
    args = parse_args(argv)
    return guarded("monitor", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
