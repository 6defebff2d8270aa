"""Stage `evaluate@<task>`: choose the champion, score every candidate on the test split, report.

The champion is chosen first, by the rule in params (`<task>.champion`) over CV scores and
latency from the training split; test scores are computed afterwards and only reported.

Writes metrics/<task>.json (git-tracked), plot data under metrics/plots/<task>/, the champion at
models/<task>/champion.joblib with models/<task>/champion.json. In MLflow: logs a run for every
candidate that has none yet (stages/tracking.py: train stages never import MLflow), adds the test
metrics to each candidate's run and points the registered model's `champion` alias at the winner.

    python -m stages.evaluate housing
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

import pandas as pd

from domain.schema import SCHEMAS, TASKS, Kind
from stages.config import (
    candidate_dir,
    champion_info,
    champion_model,
    load_params,
    metrics_file,
    plots_dir,
)
from stages.files import atomic_dir, atomic_path, read_json, write_json
from stages.lifetime import start_stage
from stages.models import load_model
from stages.rawdata import read_split
from stages.scoring import choose_champion, score


def load_candidates(task: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """summary.json of each candidate, with a clear error if a train stage has not run."""
    summaries = {}
    for name in names:
        path = candidate_dir(task, name) / "summary.json"
        if not path.exists():
            sys.exit(f"evaluate {task}: {path} is missing; run `dvc repro train-{task}@{name}` first")
        summaries[name] = read_json(path)
    return summaries


def plot_data(task: str, y_true: pd.Series, y_pred, candidates: dict[str, dict[str, Any]], metric: str) -> dict:
    """Tables for `dvc plots show`: predictions (or confusion pairs) and the candidate comparison."""
    tables = {
        "candidates.csv": pd.DataFrame(
            [{"candidate": n, "cv": c["cv"][metric]["mean"], "test": c["test"][metric]} for n, c in candidates.items()]
        ),
    }
    if SCHEMAS[task].kind is Kind.REGRESSION:
        tables["predictions.csv"] = pd.DataFrame(
            {"actual": y_true.to_numpy(), "predicted": y_pred, "residual": y_pred - y_true.to_numpy()}
        ).round(1)
    else:
        tables["confusion.csv"] = pd.DataFrame({"actual": y_true.to_numpy(), "predicted": y_pred})
    return tables


def evaluate(task: str, params: dict[str, Any]) -> dict[str, Any]:
    rule = params[task]["champion"]
    names = list(params[task]["candidates"])
    summaries = load_candidates(task, names)
    champion = choose_champion(summaries, rule["metric"], rule.get("max_single_row_ms"))

    X_test, y_test = read_split(task, "test")
    report: dict[str, Any] = {"champion": champion, "rule": rule, "candidates": {}}
    champion_predictions = None
    for name, summary in summaries.items():
        model = load_model(candidate_dir(task, name) / "model.joblib")
        predictions = model.predict(X_test)
        if name == champion:
            champion_predictions = predictions
        report["candidates"][name] = {
            "cv": summary["cv"],
            "test": score(task, y_test.to_numpy(), predictions),
            "latency": summary["latency"],
        }
    best = report["candidates"][champion]
    report.update(cv=best["cv"], test=best["test"], latency=best["latency"])
    report["tables"] = plot_data(task, y_test, champion_predictions, report["candidates"], rule["metric"])
    return report


def publish(task: str, params: dict[str, Any], report: dict[str, Any]) -> None:
    """MLflow: a run for each candidate (found by its model's md5, or logged now) with its test metrics;
    register the champion and move its alias. Adds the run ids and model URIs to the report."""
    from stages import tracking  # lazy: importing mlflow costs about a second

    tracking.configure()
    champion = report["champion"]
    summaries = load_candidates(task, list(report["candidates"]))
    logged = []
    for name, result in report["candidates"].items():
        run = tracking.candidate_run(task, name, candidate_dir(task, name) / "model.joblib", summaries[name],
                                     params["data"][task]["md5"])
        tracking.add_metrics(run.run_id, {"test": result["test"]}, tags={"champion": str(name == champion).lower()})
        result.update(mlflow_run_id=run.run_id, mlflow_model_uri=run.model_uri)
        if run.logged_now:
            logged.append(name)
    reused = len(report["candidates"]) - len(logged)
    print(f"evaluate {task}: MLflow {tracking.tracking_uri()}: new runs for {', '.join(logged) or 'none'}; "
          f"{reused} unchanged candidate(s) already logged")
    registered = SCHEMAS[task].model_name
    best = report["candidates"][champion]
    report["registered_model"] = registered
    report["model_version"] = tracking.register_champion(registered, best["mlflow_run_id"], best["mlflow_model_uri"])


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    args = parser.parse_args(argv)
    params = load_params()
    report = evaluate(args.task, params)
    tables = report.pop("tables")
    publish(args.task, params, report)

    champion = report["champion"]
    with atomic_dir(plots_dir(args.task)) as out:
        for name, table in tables.items():
            table.to_csv(out / name, index=False)
    with atomic_path(champion_model(args.task)) as tmp:
        shutil.copyfile(candidate_dir(args.task, champion) / "model.joblib", tmp)
    write_json(champion_info(args.task), {
        "task": args.task,
        "candidate": champion,
        "mlflow_run_id": report["candidates"][champion]["mlflow_run_id"],
        "mlflow_model_uri": report["candidates"][champion]["mlflow_model_uri"],
        "registered_model": report["registered_model"],
        "model_version": report["model_version"],
        "raw_data_md5": params["data"][args.task]["md5"],
        "cv": report["cv"],
        "test": report["test"],
        "latency": report["latency"],
    })
    write_json(metrics_file(args.task), report)
    metric = params[args.task]["champion"]["metric"]
    print(f"evaluate {args.task}: champion {champion} (CV {metric} {report['cv'][metric]['mean']:.4f}, "
          f"test {metric} {report['test'][metric]:.4f}), registered as "
          f"{report['registered_model']} version {report['model_version']}")


if __name__ == "__main__":
    main()
