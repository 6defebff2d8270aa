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

The base configuration is scored first and wins ties, so a search only replaces it with a configuration
that cross-validates better (record that one in `hyperparams` and a rerun finds it again). Each configuration is
the candidate pipeline (features, scaling, seed averaging) scored by ``scoring.cross_validation`` with the folds
an untuned candidate gets, so tuned and untuned candidates are compared on equal terms. If the search averages as
many seeds as the candidate, the winner's trial scores are its CV scores; with fewer seeds (a cheaper search),
the winner is cross-validated once more as the candidate will be fitted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.model_selection import ParameterSampler

from stages.candidates import ESTIMATORS, build_pipeline, fold_backend
from stages.scoring import LOWER_IS_BETTER, cross_validation


@dataclass
class SearchResult:
    """What a search found: the best full hyperparameters, the candidate's CV scores with them, every trial."""

    metric: str
    best_hyperparams: dict[str, Any]
    best_cv: dict[str, dict[str, float]]  # CV of the candidate as fitted (its own number of seeds)
    best_trial: int
    trials: list[dict[str, Any]]  # {"hyperparams": searched ones, "cv", "seconds"} in trial order
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


def flat_scores(cv: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """CV scores as flat names: {"r2": {"mean": m}} -> {"r2_mean": m}; per-class ones -> "precision_setosa_mean"."""
    out: dict[str, float] = {}
    for name, value in cv.items():
        if isinstance(value, dict):
            out.update(flat_scores(value, f"{prefix}{name}_"))
        else:
            out[f"{prefix}{name}"] = float(value)
    return out


def trials_table(report: dict[str, Any]) -> pd.DataFrame:
    """A search report as a table, one row per trial: searched hyperparameters, mean and std of each CV metric."""
    return pd.DataFrame([
        {"trial": i, **trial["hyperparams"], **flat_scores(trial["cv"]), "seconds": trial["seconds"]}
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
    sign = -1 if metric in LOWER_IS_BETTER else 1

    def score(hyperparams: dict[str, Any], n_seeds: int) -> dict[str, dict[str, float]]:
        model = build_pipeline(task, {**spec, "seeds": n_seeds, "hyperparams": hyperparams}, features, cv["seed"])
        return cross_validation(task, model, X, y, cv["folds"], cv["seed"], cv.get("n_jobs", 1),
                                backend=fold_backend(spec))

    configs = configurations(base, search)
    trials, best = [], 0
    for i, hyperparams in enumerate(configs):
        started = time.perf_counter()
        scores = score(hyperparams, search_seeds)
        trials.append({
            "hyperparams": {name: hyperparams.get(name, defaults[name]) for name in search["space"]},
            "cv": scores,
            "seconds": round(time.perf_counter() - started, 2),
        })
        if sign * scores[metric]["mean"] > sign * trials[best]["cv"][metric]["mean"]:  # strict: ties keep the earlier
            best = i
    best_cv = trials[best]["cv"] if search_seeds == seeds else score(configs[best], seeds)
    return SearchResult(metric, configs[best], best_cv, best, trials, search_seeds, search["n_iter"], search["seed"])
