"""Hyperparameter search for one candidate, by cross-validation on the training split only.

A candidate block in params.yaml may carry a ``search`` block::

    hgb:
      estimator: hist_gradient_boosting_regressor
      seeds: 3
      hyperparams: {learning_rate: 0.1, max_iter: 300}   # the base configuration
      search:
        n_iter: 6        # configurations sampled from the space, besides the base one
        seed: 42         # seed of the sampling: the same block always tries the same configurations
        seeds: 1         # optional: seeds averaged while searching (default: the candidate's `seeds`)
        space:           # hyperparameter -> values to try; the others stay as in `hyperparams`
          learning_rate: [0.05, 0.1]
          max_leaf_nodes: [31, 63]

The search is scikit-learn's `GridSearchCV` over an explicit list of configurations: the base first, then
up to `n_iter` distinct ones sampled by `ParameterSampler`. Each configuration is the whole candidate pipeline
(features, scaling, seed averaging) with the folds and scorers an untuned candidate gets
(`scoring.cv_plan`), so tuned and untuned candidates are compared on equal terms. GridSearchCV ranks ties to
the earliest configuration, so the base wins ties and a search only replaces it with a configuration that
cross-validates better (record that one in `hyperparams` and a rerun finds it again).

What GridSearchCV does not do for us: searching with fewer seeds than the candidate is fitted with (a cheaper
search). Then the winner is cross-validated once more with the candidate's own seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.model_selection import GridSearchCV, ParameterSampler
from sklearn.pipeline import Pipeline

from domain.estimators import FoldModel
from stages.candidates import ESTIMATORS, build_pipeline, fold_backend
from stages.fits import fold_parallelism
from stages.scoring import cross_validation, cv_plan, flat_scores, single_threaded, summarise_folds


@dataclass
class SearchResult:
    """What a search found: the best full hyperparameters, the candidate's CV scores with them, every trial."""

    metric: str
    best_hyperparams: dict[str, Any]
    best_cv: dict[str, dict[str, float]]  # CV of the candidate as fitted (its own number of seeds)
    best_trial: int
    trials: list[dict[str, Any]]  # {"hyperparams": searched ones, "cv"} in trial order
    search_seeds: int
    n_iter: int  # the budget asked for in params (trials = the base + up to n_iter sampled)
    seed: int

    def report(self) -> dict[str, Any]:
        """JSON-ready summary for summary.json and MLflow."""
        return {
            "metric": self.metric,
            "n_iter": self.n_iter,
            "seed": self.seed,
            "search_seeds": self.search_seeds,
            "best_trial": self.best_trial,
            "best_hyperparams": self.best_hyperparams,
            "trials": self.trials,
        }


def trials_table(report: dict[str, Any]) -> pd.DataFrame:
    """A search report as a table, one row per trial: searched hyperparameters, mean and std of each CV metric."""
    return pd.DataFrame([
        {"trial": i, **trial["hyperparams"], **flat_scores(trial["cv"])}
        for i, trial in enumerate(report["trials"])
    ])


def check_search(spec: dict[str, Any]) -> dict[str, Any]:
    """The candidate's search block, validated, with clear messages for the mistakes one makes in YAML."""
    search = spec["search"]
    space = search.get("space")
    if not isinstance(space, dict) or not space:
        raise ValueError("search.space must map hyperparameter names to lists of values")
    known = ESTIMATORS[spec["estimator"]]().get_params()
    unknown = sorted(set(space) - set(known))
    if unknown:
        raise ValueError(f"search.space names unknown hyperparameter(s) of {spec['estimator']}: {', '.join(unknown)}")
    empty = sorted(name for name, values in space.items() if not isinstance(values, list) or not values)
    if empty:
        raise ValueError(f"search.space values must be non-empty lists: {', '.join(empty)}")
    for key, minimum in (("n_iter", 0), ("seed", 0), ("seeds", 1)):
        value = search.get(key, minimum if key == "seeds" else None)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"search.{key} must be a whole number >= {minimum}")
    return search


def configurations(base: dict[str, Any], search: dict[str, Any]) -> list[dict[str, Any]]:
    """Full hyperparameters of each trial: the base first, then up to n_iter distinct sampled ones.

    Sampling is seeded and without replacement from the grid the space spans (all of it if smaller than n_iter).
    """
    space = search["space"]
    n_iter = min(search["n_iter"], math.prod(len(values) for values in space.values()))
    trials = [dict(base)]
    for sample in ParameterSampler(space, n_iter, random_state=search["seed"]):
        candidate = {**base, **sample}
        if candidate not in trials:
            trials.append(candidate)
    return trials


def tune(
    task: str,
    spec: dict[str, Any],
    features: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    cv: dict[str, Any],
    metric: str,
) -> SearchResult:
    """Score each configuration of the candidate's search by CV on (X, y); the best mean `metric` wins.

    `cv` is the params.yaml `cv` block (folds, seed, n_jobs). X, y must be the training split.
    """
    search = check_search(spec)
    base = dict(spec.get("hyperparams") or {})
    defaults = ESTIMATORS[spec["estimator"]]().get_params()
    seeds = int(spec.get("seeds", 1))
    search_seeds = search.get("seeds", seeds)
    configs = configurations(base, search)

    def pipeline(hyperparams: dict[str, Any], n_seeds: int) -> Pipeline:
        return build_pipeline(task, {**spec, "seeds": n_seeds, "hyperparams": hyperparams}, features, cv["seed"])

    splitter, scoring = cv_plan(task, y, cv["folds"], cv["seed"])
    pipelines = [FoldModel(single_threaded(pipeline(hyperparams, search_seeds))) for hyperparams in configs]
    # One step whose value is each whole candidate pipeline: an explicit list of configurations.
    # refit=False: rank without fitting the winner here (the train stage fits it).
    grid = GridSearchCV(Pipeline([("candidate", pipelines[0])]), [{"candidate": [p]} for p in pipelines],
                        scoring=scoring, refit=False, cv=splitter, n_jobs=cv.get("n_jobs", 1))
    # One context for the search and its follow-up CV: on a cluster, the data is scattered once.
    with fold_parallelism(fold_backend(spec), (X, y)):
        grid.fit(X, y)
        results = grid.cv_results_
        folds = splitter.get_n_splits()
        trials = []
        for i, hyperparams in enumerate(configs):
            fold_scores = {name: [results[f"split{k}_test_{name}"][i] for k in range(folds)] for name in scoring}
            trials.append({
                "hyperparams": {name: hyperparams.get(name, defaults[name]) for name in search["space"]},
                "cv": summarise_folds(scoring, fold_scores),
            })
        best = int(results[f"rank_test_{metric}"].argmin())  # ranks tie to the earliest configuration
        if search_seeds == seeds:
            best_cv = trials[best]["cv"]
        else:
            best_cv = cross_validation(task, pipeline(configs[best], seeds), X, y, cv["folds"], cv["seed"],
                                       cv.get("n_jobs", 1), backend=fold_backend(spec))
    return SearchResult(metric, configs[best], best_cv, best, trials, search_seeds, search["n_iter"], search["seed"])
