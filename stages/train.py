"""Stage `train-<task>@<candidate>`: cross-validate and fit one candidate on the training split.

Writes models/<task>/candidates/<candidate>/ with the fitted pipeline (model.joblib) and
summary.json (params as fitted, CV scores, the deterministic prediction cost the champion rule reads,
the search's trials). A candidate with a
`search` block is tuned first (stages/tuning.py); its best configuration is the one fitted. The test
split is not read here: everything the champion rule uses comes from the training split.

MLflow is not imported here: `evaluate` logs each new candidate's run from summary.json and
model.joblib, in one process per task, so a train stage does not pay MLflow's import and store
(more than training most candidates costs; bench/NOTES.md).

    python -m stages.train <task> <candidate>
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from threadpoolctl import threadpool_limits

from stages.candidates import build_pipeline, fold_backend
from stages.champion import prediction_cost
from stages.config import candidate_dir, load_params, task_argument, task_candidates
from stages.files import atomic_dir, write_json
from stages.lifetime import start_stage
from stages.models import save_model
from stages.rawdata import read_split
from stages.scoring import cross_validation, single_threaded
from stages.tuning import tune


def train_candidate(task: str, candidate: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Cross-validate (or tune, if the candidate has a search block), then fit on the whole training split.

    Returns (model, summary); summary["params"] is the candidate block as fitted (a search block replaced by the
    hyperparameters it chose) and summary["search"] the search's report.

    Native thread pools (OpenMP, BLAS) are limited to one thread: HistGradientBoosting's OpenMP threads
    spin-wait at every barrier and thrash on shared cores (bench/NOTES.md). joblib's `n_jobs` (forests, CV
    folds) still uses every core.
    """
    with threadpool_limits(limits=1):
        return _train_candidate(task, candidate, params)


def _train_candidate(task: str, candidate: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    task_params = params[task]
    spec = task_candidates(task, params)[candidate]
    features = task_params.get("features", {})
    X, y = read_split(task, "train")
    seed = params["cv"]["seed"]
    search = None
    if spec.get("search"):
        search = tune(task, spec, features, X, y, params["cv"], task_params["champion"]["metric"])
        spec = {key: value for key, value in spec.items() if key != "search"} | {"hyperparams": search.best_hyperparams}
    model = build_pipeline(task, spec, features, seed)
    if search is not None:
        cv = search.best_cv  # the winner was cross-validated as this very pipeline, with the same folds
    else:
        cv = cross_validation(task, model, X, y, params["cv"]["folds"], seed, params["cv"].get("n_jobs", 1),
                              backend=fold_backend(spec))
    model = single_threaded(model.fit(X, y))
    # Only what the same code, data and params always give: no timings (the output is cached and hashed).
    summary = {
        "task": task,
        "candidate": candidate,
        "estimator": spec["estimator"],
        "params": spec,
        "cv": cv,
        "cost": prediction_cost(model),
        "train_rows": len(X),
        # raw input rows for the MLflow model's input example (logged by evaluate, which never reads train.csv)
        "input_example": X.dropna().head(3).to_dict(orient="records"),
    }
    if search is not None:
        summary["search"] = search.report()
    return model, summary


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    parser.add_argument("candidate")
    args = parser.parse_args(argv)
    params = load_params()
    if args.candidate not in task_candidates(args.task, params):
        sys.exit(f"train: no candidate {args.candidate!r} of task {args.task} under `candidates` in params.yaml")
    started = time.perf_counter()
    model, summary = train_candidate(args.task, args.candidate, params)
    seconds = time.perf_counter() - started
    with atomic_dir(candidate_dir(args.task, args.candidate)) as out:
        save_model(model, out / "model.joblib")
        write_json(out / "summary.json", summary)
    metric = next(iter(summary["cv"]))
    print(
        f"train {args.candidate}: CV {metric} {summary['cv'][metric]['mean']:.4f} "
        f"± {summary['cv'][metric]['std']:.4f}, {summary['cost']['splits_per_row']} tree splits per row "
        f"({seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
