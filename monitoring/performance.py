"""`make monitor`, second half: each arm's model performance against the true values clients sent back.

    python -m monitoring.performance --task housing [--since 24h] [--log-url URL | --log-dir DIR] [--out reports]
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

from domain.schema import SCHEMAS, TASKS, Kind
from monitoring.cli import guarded, read_settings
from monitoring.logquery import (
    add_location_arguments,
    location_from,
    parse_since,
    read_feedback,
    since_label,
)

EXIT_OK, EXIT_BETTER, EXIT_WORSE = 0, 5, 6  # 2 and 3: monitoring/cli.py
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
        return {"method": self.method, "n": self.n, "difference": _round(self.difference), "low": _round(self.low),
                "high": _round(self.high), "confidence": self.confidence}


def paired_interval(differences: np.ndarray, confidence: float) -> Interval:
    """Mean of per-record differences with the normal approximation: mean +- z * sd / sqrt(n) (sd with ddof 1)."""
    from scipy.stats import norm

    n = len(differences)
    mean = float(np.mean(differences))
    half = float(norm.ppf(0.5 + confidence / 2) * np.std(differences, ddof=1) / math.sqrt(n))
    return Interval("paired, normal approximation", n, mean, mean - half, mean + half, confidence)


def welch_interval(challenger: np.ndarray, champion: np.ndarray, confidence: float) -> Interval:
    """Difference of means (challenger - champion) with Welch's t interval: standard error
    sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite degrees of freedom (the normal quantile when both variances are 0)."""
    from scipy.stats import t

    n1, n2 = len(challenger), len(champion)
    v1, v2 = float(np.var(challenger, ddof=1)) / n1, float(np.var(champion, ddof=1)) / n2
    difference = float(np.mean(challenger) - np.mean(champion))
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


def scored(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    """The joined rows with `score`: squared error (regression) or correctness 0/1 (classification), and
    `abs_error` for regression."""
    schema = SCHEMAS[task]
    frame = frame.copy()
    if schema.kind is Kind.REGRESSION:
        error = (frame["prediction"].astype(float) - frame["actual"].astype(float)).to_numpy()
        frame["score"], frame["abs_error"] = error ** 2, np.abs(error)
    else:
        label = schema.target.name
        predicted = [p.get(label) if isinstance(p, dict) else p for p in frame["prediction"]]
        frame["score"] = [float(p == a) for p, a in zip(predicted, frame["actual"], strict=True)]
    return frame


def metrics(rows: pd.DataFrame, kind: Kind) -> dict[str, Any]:
    if kind is Kind.REGRESSION:
        return {"n": len(rows), "rmse": _round(math.sqrt(rows["score"].mean())),
                "mae": _round(rows["abs_error"].mean())}
    return {"n": len(rows), "accuracy": _round(rows["score"].mean())}


def over_time(rows: pd.DataFrame, kind: Kind, buckets: int) -> list[dict[str, Any]]:
    """Equal-count buckets of one arm's rows in log order: each one's first and last prediction time and metrics."""
    out = []
    for part in np.array_split(np.arange(len(rows)), min(buckets, len(rows))):
        bucket = rows.iloc[part]
        out.append({"from": bucket["ts"].iloc[0].isoformat(), "to": bucket["ts"].iloc[-1].isoformat(),
                    **metrics(bucket, kind)})
    return out


def compare(frame: pd.DataFrame, settings: Settings, kind: Kind) -> dict[str, Any]:
    """Both comparisons, and the verdict from the first one with enough rows (paired preferred)."""
    key = ["request_id", "position"]
    champion = frame[frame["arm"] == "champion"]
    shadow = frame[frame["arm"] == "shadow"]
    pairs = champion.merge(shadow, on=key, suffixes=("_champion", "_challenger"))
    unshadowed = champion[~champion.set_index(key).index.isin(shadow.set_index(key).index)]
    challenger = frame[frame["arm"] == "challenger"]
    statistic = "squared error" if kind is Kind.REGRESSION else "correctness"
    higher_is_better = kind is Kind.CLASSIFICATION
    result: dict[str, Any] = {"statistic": f"challenger - champion of the per-record {statistic}",
                              "better_when": "higher" if higher_is_better else "lower",
                              "paired": {"n": len(pairs)}, "unpaired": {"n_champion": len(unshadowed),
                                                                        "n_challenger": len(challenger)}}
    verdict, used = "not judged", None
    if len(pairs) >= 2:
        interval = paired_interval((pairs["score_challenger"] - pairs["score_champion"]).to_numpy(),
                                   settings.confidence)
        result["paired"].update(interval.as_dict(), verdict=judge(interval, higher_is_better))
        if len(pairs) >= settings.min_pairs:
            verdict, used = result["paired"]["verdict"], "paired"
    if len(unshadowed) >= 2 and len(challenger) >= 2:
        interval = welch_interval(challenger["score"].to_numpy(), unshadowed["score"].to_numpy(), settings.confidence)
        result["unpaired"].update(interval.as_dict(), verdict=judge(interval, higher_is_better))
        if used is None and min(len(unshadowed), len(challenger)) >= settings.min_pairs:
            verdict, used = result["unpaired"]["verdict"], "unpaired"
    result["used"], result["verdict"] = used, verdict
    return result


def build_summary(task: str, since: str | None, frame: pd.DataFrame, settings: Settings) -> dict[str, Any]:
    kind = SCHEMAS[task].kind
    summary: dict[str, Any] = {
        "task": task, "kind": kind.value, "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since, "window": since_label(since),
        "settings": {"confidence": settings.confidence, "min_pairs": settings.min_pairs, "buckets": settings.buckets},
        "feedback_rows": len(frame),
    }
    if frame.empty:
        summary.update(arms={}, models=[], over_time={}, comparison=None, verdict="no feedback",
                       message=f"no {task} feedback yet {since_label(since)}: nothing to judge")
        summary["exit_code"] = VERDICT_EXIT[summary["verdict"]]
        return summary
    frame = scored(frame, task)
    arms = [arm for arm in ("champion", "challenger", "shadow") if (frame["arm"] == arm).any()]
    summary["arms"] = {arm: metrics(frame[frame["arm"] == arm], kind) for arm in arms}
    summary["models"] = [{"arm": arm, "model": model, **metrics(rows, kind)}
                         for (arm, model), rows in frame.groupby(["arm", "model"], sort=True)]
    summary["over_time"] = {arm: over_time(frame[frame["arm"] == arm], kind, settings.buckets) for arm in arms}
    comparison = compare(frame, settings, kind)
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
    frame = read_feedback(location, args.task, since)
    summary = build_summary(args.task, since, frame, settings)
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
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--since", help="only predictions of the last 30m / 24h / 7d (default: the whole log)")
    add_location_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="settings: monitoring.performance")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: exit codes as in the module docstring; problems and bugs as monitoring/cli.py says."""
    args = parse_args(argv)
    return guarded("performance", lambda: run(args))


def _round(value: float) -> float:
    return round(float(value), 6)


if __name__ == "__main__":
    sys.exit(main())
