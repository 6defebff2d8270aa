"""Stage `evaluate@<task>`: choose the champion, score every candidate on the test split, report.

The champion is chosen first, by the rule in params (`<task>.champion`, stages/champion.py) over CV
scores and deterministic costs from the training split; test scores are computed afterwards and only
reported.

Writes, all deterministic (the same code, data and params give the same bytes on any machine):
- metrics/<task>.json: the champion's scores (git-tracked, `dvc metrics show`);
- metrics/<task>/<candidate>.json: each candidate's scores and cost (git-tracked, so `dvc metrics diff`
  between branches shows exactly the candidates that changed);
- metrics/plots/<task>/: plot data (`dvc plots show`);
- models/<task>/champion.joblib and champion.json: the winner, its scores and cost.
In MLflow: logs a run for every candidate that has none yet (stages/tracking.py) and adds the test metrics
to each candidate's run. Registering models and moving the registry's aliases is the next stage's job
(`promote`, stages/promote.py: the promotion gate). What MLflow assigns (run ids) goes to
models/<task>/mlflow.json, outside git and the DVC cache.

    python -m stages.evaluate <task>
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

import numpy as np
import pandas as pd

from domain.schema import SCHEMAS, Kind
from stages.champion import choose_champion
from stages.config import (
    candidate_dir,
    candidate_metrics_dir,
    champion_info,
    champion_model,
    load_params,
    metrics_file,
    mlflow_info,
    plots_dir,
    task_argument,
    task_candidates,
)
from stages.files import atomic_dir, atomic_path, read_json, write_json
from stages.lifetime import start_stage
from stages.models import load_model
from stages.rawdata import read_split
from stages.scoring import score

# Digits kept in the git-tracked metrics: enough to compare models, few enough for `dvc metrics show` to fit
# a terminal. Every digit is in MLflow and in champion.json.
DIGITS = 4


def load_candidates(task: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """summary.json of each candidate, with a clear error if a train stage has not run."""
    summaries = {}
    for name in names:
        path = candidate_dir(task, name) / "summary.json"
        if not path.exists():
            sys.exit(f"evaluate {task}: {path} is missing; run `dvc repro train@{name}` first")
        summaries[name] = read_json(path)
    return summaries


def headline(task: str, metric: str, cv: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a metrics table shows for one model: the rule's metric by CV (mean, spread) and on
    the test split, plus the test error in target units (regression) or macro F1 (classification)."""
    out = {"cv": round(cv[metric]["mean"], DIGITS), "cv_std": round(cv[metric]["std"], DIGITS),
           "test": round(test[metric], DIGITS)}
    if SCHEMAS[task].kind is Kind.REGRESSION:
        out["test_rmse"] = round(test["rmse"])
    else:
        out["test_f1"] = round(test["f1_macro"], DIGITS)
    return out


def plot_data(task: str, y_true: pd.Series, y_pred: np.ndarray, candidates: dict[str, dict[str, Any]],
              metric: str) -> dict[str, pd.DataFrame]:
    """Tables for `dvc plots show`: predictions (or confusion pairs) and the candidates' CV and test scores."""
    tables = {"candidates.csv": pd.DataFrame([
        {"candidate": name, "cv": c["cv"][metric]["mean"], "cv_std": c["cv"][metric]["std"], "test": c["test"][metric]}
        for name, c in candidates.items()]).round(DIGITS)}
    actual = y_true.to_numpy()
    if SCHEMAS[task].kind is Kind.REGRESSION:
        tables["predictions.csv"] = pd.DataFrame(
            {"actual": actual, "predicted": y_pred, "residual": y_pred - actual}).round(1)
    else:
        tables["confusion.csv"] = pd.DataFrame({"actual": actual, "predicted": y_pred})
    return tables


def evaluate(task: str, params: dict[str, Any]) -> dict[str, Any]:
    """Choose the champion, then score every candidate on the test split. Pure apart from reading files."""
    rule = params[task]["champion"]
    names = list(task_candidates(task, params))
    summaries = load_candidates(task, names)
    champion = choose_champion(summaries, rule["metric"], rule.get("max_splits_per_row"))

    X_test, y_test = read_split(task, "test")
    candidates: dict[str, dict[str, Any]] = {}
    champion_predictions = None
    for name, summary in summaries.items():
        predictions = load_model(candidate_dir(task, name) / "model.joblib").predict(X_test)
        if name == champion:
            champion_predictions = predictions
        candidates[name] = {"cv": summary["cv"], "test": score(task, y_test.to_numpy(), predictions),
                            "cost": summary["cost"]}
    return {
        "champion": champion,
        "metric": rule["metric"],
        "candidates": candidates,
        "tables": plot_data(task, y_test, champion_predictions, candidates, rule["metric"]),
        "X_test": X_test,
    }


def publish(task: str, params: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """MLflow: a run for each candidate (found by its model's md5, or logged now) with its test metrics.
    Registering and the aliases are `promote`'s. Returns what MLflow assigned (ids, URIs)."""
    from stages import tracking  # lazy: importing mlflow costs about a second

    tracking.configure()
    champion = report["champion"]
    summaries = load_candidates(task, list(report["candidates"]))
    runs, logged = {}, []
    datasets = tracking.training_datasets(task)
    for name, result in report["candidates"].items():
        run = tracking.candidate_run(task, name, candidate_dir(task, name) / "model.joblib", summaries[name],
                                     SCHEMAS[task].source["md5"], latency_rows=report["X_test"], datasets=datasets)
        tracking.add_metrics(run.run_id, {"test": result["test"]}, tags={"champion": str(name == champion).lower()})
        runs[name] = {"run_id": run.run_id, "model_uri": run.model_uri}
        if run.logged_now:
            logged.append(name)
    print(f"evaluate {task}: MLflow {tracking.tracking_uri()}: new runs for {', '.join(logged) or 'none'}; "
          f"{len(runs) - len(logged)} unchanged candidate(s) already logged")
    return {"tracking_uri": tracking.tracking_uri(), "registered_model": SCHEMAS[task].model_name,
            "champion_run_id": runs[champion]["run_id"], "champion_model_uri": runs[champion]["model_uri"],
            "runs": runs}


def tracking_failure(exc: Exception) -> str:
    """One line for a failure to reach or write the tracking store (re-raises anything else)."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    from stages import failures, tracking

    if failures.no_space(exc) is not None:  # a full disk, not the server: reported as such
        raise exc
    if isinstance(exc, tracking.TrackingUnreachable):
        return str(exc)
    if isinstance(exc, (MlflowException, RequestException)):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return str(tracking.unreachable(tracking.tracking_uri(), first[:200]))
    raise exc


def write_outputs(task: str, params: dict[str, Any], report: dict[str, Any]) -> None:
    """Every deterministic output of the stage (see the module docstring), each written all-or-nothing."""
    champion, metric = report["champion"], report["metric"]
    best = report["candidates"][champion]
    with atomic_dir(plots_dir(task)) as out:
        for name, table in report["tables"].items():
            table.to_csv(out / name, index=False)
    with atomic_dir(candidate_metrics_dir(task)) as out:
        for name, result in report["candidates"].items():
            write_json(out / f"{name}.json", {**headline(task, metric, result["cv"], result["test"]),
                                              "splits_per_row": result["cost"]["splits_per_row"]})
    with atomic_path(champion_model(task)) as tmp:
        shutil.copyfile(candidate_dir(task, champion) / "model.joblib", tmp)
    write_json(champion_info(task), {
        "task": task,
        "candidate": champion,
        "metric": metric,
        "raw_data_md5": SCHEMAS[task].source["md5"],
        "cv": best["cv"],
        "test": best["test"],
        "cost": best["cost"],
    })
    write_json(metrics_file(task), {"champion": champion, "metric": metric,
                                    **headline(task, metric, best["cv"], best["test"])})


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    params = load_params()
    report = evaluate(args.task, params)
    # outputs first: DVC deleted them before the stage ran, and a tracking server that fails below must not leave
    # the git-tracked metrics deleted (the stage still fails, so dvc.lock is not updated)
    write_outputs(args.task, params, report)
    try:
        tracked = publish(args.task, params, report)
    except Exception as exc:  # a tracking failure in one line; anything else is re-raised
        sys.exit(f"evaluate {args.task}: {tracking_failure(exc)}")
    write_json(mlflow_info(args.task), tracked)  # not an output: what MLflow assigned differs every run
    champion, metric = report["champion"], report["metric"]
    best = report["candidates"][champion]
    print(f"evaluate {args.task}: champion {champion} (CV {metric} {best['cv'][metric]['mean']:.4f}, "
          f"test {metric} {best['test'][metric]:.4f}); `promote@{args.task}` decides whether it is served")


if __name__ == "__main__":
    main()
