"""`make monitor`, second half: each arm's model performance against the true values clients sent back.

    python -m monitoring.performance --task TASK [--since 24h] [--log-url URL | --log-dir DIR] [--out reports]
                                     [--params params.yaml]

Joins the task's predictions logged in the window with their feedback (POST /<task>/feedback, table `feedback`)
and reports, per arm (champion, challenger, shadow) and per model tag: n, RMSE and MAE (regression) or accuracy
(classification: the logged label against the true one), overall and over time (`buckets` equal-count buckets of
each arm, in log order). Then compares the challenger with the champion, `challenger - champion` of the per-record
squared error (regression: negative is better) or of correctness (classification: positive is better):

- paired, on the same records: shadow mode logs the challenger's prediction beside the champion's answer, so
  each record with feedback gives one difference; mean with a normal-approximation interval (mean +- z * sd/sqrt(n));
- unpaired, for A/B mode (each record answered by one arm): the champion's records that have no shadow row against
  the challenger's; difference of means with a Welch interval (Welch-Satterthwaite degrees of freedom).

The verdict comes from the paired comparison when it has at least `min_pairs` pairs, else from the unpaired one when
each arm has at least `min_pairs` records: "challenger better" / "challenger worse" when the interval at
`confidence` excludes 0 in the challenger's favour / against it, else "no significant difference"; with fewer rows,
"not judged". Settings: params.yaml `monitoring.performance`. Writes <out>/<task>-performance.json (sorted keys) and
prints a short table. Exit codes:

    0  no significant difference, not judged (too few rows), or no feedback yet: the message says which
    5  the challenger is significantly better than the champion
    6  the challenger is significantly worse than the champion
    2  bad arguments, no log, the log unreadable (a one-line message on stderr)
    3  the tool itself failed (a bug: traceback on stderr)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from domain.schema import SCHEMAS, Kind
from monitoring import feedback_window
from monitoring.cli import add_task_argument, guarded, read_settings
from monitoring.logquery import (
    Window,
    add_location_arguments,
    location_from,
    open_window,
    parse_since,
    since_label,
)
from monitoring.tallies import Moments, Tally, rounded

EXIT_OK, EXIT_BETTER, EXIT_WORSE = 0, 5, 6  # 2 and 3: monitoring/cli.py
ARMS = ("champion", "challenger", "shadow")
VERDICT_EXIT = {"challenger better": EXIT_BETTER, "challenger worse": EXIT_WORSE,
                "no significant difference": EXIT_OK, "not judged": EXIT_OK, "no feedback": EXIT_OK}


@dataclass(frozen=True)
class Settings:
    confidence: float
    min_pairs: int
    buckets: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Settings:
        block = params["monitoring"]["performance"]
        settings = cls(float(block["confidence"]), int(block["min_pairs"]), int(block["buckets"]))
        if not 0 < settings.confidence < 1 or settings.min_pairs < 2 or settings.buckets < 1:
            raise ValueError(f"monitoring.performance needs 0 < confidence < 1, min_pairs >= 2, buckets >= 1: {block}")
        return settings


@dataclass(frozen=True)
class Interval:
    """A difference of means (challenger - champion) and its interval at `confidence`."""

    method: str
    n: int                 # pairs (paired) or both arms' records (unpaired)
    difference: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "n": self.n, "difference": rounded(self.difference), "low": rounded(self.low),
                "high": rounded(self.high), "confidence": self.confidence}


def paired_interval(differences: Moments, confidence: float) -> Interval:
    """Mean of per-record differences with the normal approximation: mean +- z * sd / sqrt(n) (sd with ddof 1)."""
    from scipy.stats import norm

    n, mean = differences.n, differences.mean
    half = float(norm.ppf(0.5 + confidence / 2) * math.sqrt(differences.variance) / math.sqrt(n))
    return Interval("paired, normal approximation", n, mean, mean - half, mean + half, confidence)


def welch_interval(challenger: Moments, champion: Moments, confidence: float) -> Interval:
    """Difference of means (challenger - champion) with Welch's t interval: standard error
    sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite degrees of freedom (the normal quantile when both variances are 0)."""
    from scipy.stats import t

    n1, n2 = challenger.n, champion.n
    v1, v2 = challenger.variance / n1, champion.variance / n2
    difference = challenger.mean - champion.mean
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1)) if se > 0 else math.inf
    half = float(t.ppf(0.5 + confidence / 2, df)) * se
    return Interval("unpaired, Welch", n1 + n2, difference, difference - half, difference + half, confidence)


def judge(interval: Interval, higher_is_better: bool) -> str:
    """Which side of 0 the interval lies on, in the challenger's terms."""
    if interval.low > 0 or interval.high < 0:
        favours = (interval.low > 0) == higher_is_better
        return "challenger better" if favours else "challenger worse"
    return "no significant difference"


def scores(task: str, predictions: pd.Series, actuals: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """Per record: squared error (regression) or correctness 0/1 (classification), and the absolute error of a
    regression (None for classification)."""
    schema = SCHEMAS[task]
    if schema.kind is Kind.REGRESSION:
        error = predictions.astype(float).to_numpy() - actuals.astype(float).to_numpy()
        return error ** 2, np.abs(error)
    label = schema.target.name
    predicted = [p.get(label) if isinstance(p, dict) else p for p in predictions]
    return np.array([float(p == a) for p, a in zip(predicted, actuals, strict=True)]), None


class Buckets:
    """Equal-count buckets of one arm's rows in log order (numpy's array_split of its n rows): each one's first and
    last prediction time and its tally, filled as the rows stream by."""

    def __init__(self, n: int, buckets: int) -> None:
        sizes = [len(part) for part in np.array_split(np.arange(n), min(buckets, n))]
        self.ends = np.cumsum(sizes)  # the index after each bucket's last row
        self.seen = 0
        self.tallies = [Tally() for _ in sizes]
        self.times: list[list[str]] = [[] for _ in sizes]  # first and last time

    def add(self, ts: pd.Series, score: np.ndarray, abs_error: np.ndarray | None) -> None:
        index = np.arange(self.seen, self.seen + len(score))
        which = np.searchsorted(self.ends, index, side="right")
        for bucket in np.unique(which):
            rows = which == bucket
            self.tallies[bucket].add(score[rows], None if abs_error is None else abs_error[rows])
            times = ts[rows]
            self.times[bucket][:] = [(self.times[bucket] or [times.iloc[0]])[0], times.iloc[-1]]
        self.seen += len(score)

    def summary(self, kind: Kind) -> list[dict[str, Any]]:
        return [{"from": _iso(first), "to": _iso(last), **tally.metrics(kind)}
                for (first, last), tally in zip(self.times, self.tallies, strict=True)]


def _iso(ts: Any) -> str:
    """A logged time (SQLite's ISO text, PostgreSQL's datetime) as ISO 8601 in UTC."""
    return pd.Timestamp(ts).tz_convert("UTC").isoformat()


def tally_window(window: Window, settings: Settings) -> dict[str, Any]:
    """Every statistic of the window's predictions with feedback, read in chunks (monitoring/feedback_window.py):
    per arm and per (arm, model) tallies, each arm's buckets over time, the challenger's scores (A/B), the paired
    differences of the shadowed records and the scores of the champion's records with no shadow row."""
    task, kind = window.task, SCHEMAS[window.task].kind
    counts = feedback_window.arm_counts(window)
    arms: dict[str, Tally] = {}
    models: dict[tuple[str, str], Tally] = {}
    over_time = {arm: Buckets(n, settings.buckets) for arm, n in counts.items()}
    challenger = Moments()
    for chunk in feedback_window.rows(window):
        score, abs_error = scores(task, chunk["prediction"], chunk["actual"])
        for (arm, model), index in chunk.groupby(["arm", "model"], sort=False).indices.items():
            part = (score[index], None if abs_error is None else abs_error[index])
            arms.setdefault(arm, Tally()).add(*part)
            models.setdefault((arm, model), Tally()).add(*part)
        for arm, index in chunk.groupby("arm", sort=False).indices.items():
            over_time[arm].add(chunk["ts"].iloc[index], score[index],
                               None if abs_error is None else abs_error[index])
            if arm == "challenger":
                challenger.add(score[index])
    paired, unshadowed = Moments(), Moments()
    for chunk in feedback_window.pairs(window):
        shadow, champion = (scores(task, chunk[column], chunk["actual"])[0] for column in ("shadow", "champion"))
        paired.add(shadow - champion)
    for chunk in feedback_window.unshadowed(window):
        unshadowed.add(scores(task, chunk["prediction"], chunk["actual"])[0])
    return {"rows": sum(counts.values()),
            "arms": {arm: arms[arm].metrics(kind) for arm in ARMS if arm in arms},
            "models": [{"arm": arm, "model": model, **tally.metrics(kind)}
                       for (arm, model), tally in sorted(models.items())],
            "over_time": {arm: over_time[arm].summary(kind) for arm in ARMS if arm in arms},
            "paired": paired, "unshadowed": unshadowed, "challenger": challenger}


def compare(tallies: dict[str, Any], settings: Settings, kind: Kind) -> dict[str, Any]:
    """Both comparisons, and the verdict from the first one with enough rows (paired preferred)."""
    pairs, unshadowed, challenger = tallies["paired"], tallies["unshadowed"], tallies["challenger"]
    statistic = "squared error" if kind is Kind.REGRESSION else "correctness"
    higher_is_better = kind is Kind.CLASSIFICATION
    result: dict[str, Any] = {"statistic": f"challenger - champion of the per-record {statistic}",
                              "better_when": "higher" if higher_is_better else "lower",
                              "paired": {"n": pairs.n}, "unpaired": {"n_champion": unshadowed.n,
                                                                     "n_challenger": challenger.n}}
    verdict, used = "not judged", None
    if pairs.n >= 2:
        interval = paired_interval(pairs, settings.confidence)
        result["paired"].update(interval.as_dict(), verdict=judge(interval, higher_is_better))
        if pairs.n >= settings.min_pairs:
            verdict, used = result["paired"]["verdict"], "paired"
    if unshadowed.n >= 2 and challenger.n >= 2:
        interval = welch_interval(challenger, unshadowed, settings.confidence)
        result["unpaired"].update(interval.as_dict(), verdict=judge(interval, higher_is_better))
        if used is None and min(unshadowed.n, challenger.n) >= settings.min_pairs:
            verdict, used = result["unpaired"]["verdict"], "unpaired"
    result["used"], result["verdict"] = used, verdict
    return result


def build_summary(task: str, since: str | None, tallies: dict[str, Any], settings: Settings) -> dict[str, Any]:
    kind = SCHEMAS[task].kind
    summary: dict[str, Any] = {
        "task": task, "kind": kind.value, "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since, "window": since_label(since),
        "settings": {"confidence": settings.confidence, "min_pairs": settings.min_pairs, "buckets": settings.buckets},
        "feedback_rows": tallies["rows"],
    }
    if not tallies["rows"]:
        summary.update(arms={}, models=[], over_time={}, comparison=None, verdict="no feedback",
                       message=f"no {task} feedback yet {since_label(since)}: nothing to judge")
        summary["exit_code"] = VERDICT_EXIT[summary["verdict"]]
        return summary
    summary.update(arms=tallies["arms"], models=tallies["models"], over_time=tallies["over_time"])
    comparison = compare(tallies, settings, kind)
    summary["comparison"] = comparison
    summary["verdict"] = comparison["verdict"]
    summary["exit_code"] = VERDICT_EXIT[summary["verdict"]]
    if comparison["used"] is None:
        summary["message"] = (f"not judged: {comparison['paired']['n']} paired records (shadow) and "
                              f"{comparison['unpaired']['n_champion']} / {comparison['unpaired']['n_challenger']} "
                              f"champion / challenger records (A/B) with feedback; at least {settings.min_pairs} are "
                              "needed (monitoring.performance.min_pairs)")
    else:
        chosen = comparison[comparison["used"]]
        summary["message"] = (f"{comparison['verdict']} ({comparison['used']}, n={chosen['n']}, challenger - "
                              f"champion {chosen['difference']:.6g} in [{chosen['low']:.6g}, {chosen['high']:.6g}] "
                              f"at {settings.confidence:.0%}, better when {comparison['better_when']})")
    return summary


def render(summary: dict[str, Any]) -> str:
    """The short human table."""
    lines = [f"performance {summary['task']}: {summary['message']}"]
    if summary["models"]:
        measures = ["rmse", "mae"] if summary["kind"] == Kind.REGRESSION.value else ["accuracy"]
        lines.append(f"  {'arm':<11} {'model':<40} {'n':>7} " + " ".join(f"{m:>12}" for m in measures))
        for row in summary["models"]:
            lines.append(f"  {row['arm']:<11} {row['model']:<40} {row['n']:>7} "
                         + " ".join(f"{row[m]:>12.6g}" for m in measures))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    settings = read_settings(args.params, "monitoring.performance", Settings.from_params)
    since = parse_since(args.since)
    location = location_from(args)
    with open_window(location, args.task, since) as window:
        tallies = tally_window(window, settings)
    summary = build_summary(args.task, since, tallies, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{args.task}-performance.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(render(summary))
    print(f"  prediction log: {location}\n  summary: {json_path}\n  ({time.perf_counter() - started:.1f} s)")
    return summary["exit_code"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="exit codes: 0 no significant difference, not judged or no feedback "
                                            "(the message says which), 5 challenger significantly better, 6 "
                                            "challenger significantly worse, 2 bad arguments or no log, 3 internal "
                                            "error")
    add_task_argument(parser)
    parser.add_argument("--since", help="only predictions of the last 30m / 24h / 7d (default: the whole log)")
    add_location_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="settings: monitoring.performance")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: exit codes as in the module docstring; problems and bugs as monitoring/cli.py says."""
    args = parse_args(argv)
    return guarded("performance", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
