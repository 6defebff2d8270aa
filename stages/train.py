"""Stage `train-<task>@<candidate>`: cross-validate and fit one candidate on the training split.

Writes models/<task>/candidates/<candidate>/ with the fitted pipeline (model.joblib) and
summary.json (CV scores, predict latency, MLflow run id). The test split is not read here:
everything the champion rule uses comes from the training split.

    python -m stages.train housing hgb
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import joblib
from threadpoolctl import threadpool_limits

from stages.atomic import atomic_dir, write_json
from stages.candidates import build_pipeline, single_threaded
from stages.config import TASKS, candidate_dir, load_params
from stages.preprocess import read_split
from stages.scoring import cross_validation, predict_latency


def train_candidate(task: str, candidate: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Cross-validate, then fit on the whole training split. Returns (model, summary).

    Native thread pools (OpenMP, BLAS) are limited to one thread. HistGradientBoosting's OpenMP
    threads spin-wait at every barrier: on a 2-core machine shared with other jobs its 5-fold CV
    took ~77 s with the default pool and ~8 s with one thread. joblib's `n_jobs` (forests, CV)
    is not affected and still uses every core.
    """
    with threadpool_limits(limits=1):
        return _train_candidate(task, candidate, params)


def _train_candidate(task: str, candidate: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    task_params = params[task]
    spec = task_params["candidates"][candidate]
    X, y = read_split(task, "train")
    seed = params["cv"]["seed"]
    model = build_pipeline(task, spec, task_params.get("features", {}), seed)
    started = time.perf_counter()
    cv = cross_validation(task, model, X, y, params["cv"]["folds"], seed, params["cv"].get("n_jobs", 1))
    cv_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = single_threaded(model.fit(X, y))
    fit_seconds = time.perf_counter() - started
    summary = {
        "task": task,
        "candidate": candidate,
        "estimator": spec["estimator"],
        "params": spec,
        "cv": cv,
        "latency": predict_latency(model, X),
        "train_rows": len(X),
        "cv_seconds": round(cv_seconds, 2),
        "fit_seconds": round(fit_seconds, 2),
    }
    return model, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("candidate")
    args = parser.parse_args(argv)
    params = load_params()
    if args.candidate not in params[args.task]["candidates"]:
        sys.exit(f"train: no candidate {args.candidate!r} under {args.task}.candidates in params.yaml")
    model, summary = train_candidate(args.task, args.candidate, params)

    from stages import tracking  # lazy: importing mlflow costs about a second

    X, _ = read_split(args.task, "train")
    summary["mlflow_run_id"], summary["mlflow_model_uri"] = tracking.log_candidate(
        args.task,
        args.candidate,
        model,
        params=summary["params"],
        metrics={"cv": summary["cv"], "latency": summary["latency"]},
        input_example=X.head(3),
        tags=tracking.run_tags(args.task, args.candidate, params["data"][args.task]["md5"]),
    )
    with atomic_dir(candidate_dir(args.task, args.candidate)) as out:
        joblib.dump(model, out / "model.joblib")
        write_json(out / "summary.json", summary)
    metric = next(iter(summary["cv"]))
    print(
        f"train {args.task}@{args.candidate}: CV {metric} {summary['cv'][metric]['mean']:.4f} "
        f"± {summary['cv'][metric]['std']:.4f}, {summary['latency']['single_row_ms']:.2f} ms/row, "
        f"MLflow run {summary['mlflow_run_id']}"
    )


if __name__ == "__main__":
    main()
