"""Stage `profile@<task>`: the reference profile drift is measured against, shipped inside the Bento.

For each feature of the training split and for the served champion's (and challenger's) predictions on it:
- numbers: inner decile edges and the training share in each bin (live PSI on /metrics);
- categories: the training share of each category;
- every column also gets a last bin for missing (or unknown) values;
plus a seeded sample of training rows with their predictions, the reference data of the offline
Evidently report (`make monitor`). Window settings for the live score (params `monitoring.live`)
travel in the profile too, so the service needs no params.yaml.

Writes models/<task>/reference.json (the champion) and reference-challenger.json; the `package` stage attaches
each to its Bento model.

    python -m stages.profile <task>
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from domain.drift import PROFILE_VERSION, bin_indices, n_bins
from domain.schema import SCHEMAS, CategoryField, Kind
from stages.config import ROLES, load_params, reference_profile, served_model, task_argument
from stages.files import atomic_path
from stages.lifetime import start_stage


def _with_proportions(spec: dict[str, Any], values: pd.Series) -> dict[str, Any]:
    """The spec plus the share of `values` in each of its bins, binned by the service's own rule."""
    counts = np.bincount(bin_indices(spec, values.tolist()), minlength=n_bins(spec))
    return {**spec, "proportions": [round(float(c) / len(values), 6) for c in counts]}


def numeric_profile(values: pd.Series, bins: int) -> dict[str, Any]:
    """Inner quantile edges and the share in each bin; missing values in the last bin.

    Ties (e.g. a capped value) merge edges: fewer, uneven bins, with their true shares.
    """
    present = values.dropna().to_numpy(dtype=float)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else []
    return _with_proportions({"kind": "numeric", "edges": [float(e) for e in edges]}, values)


def categorical_profile(values: pd.Series, categories: list[str]) -> dict[str, Any]:
    """Share of each known category; missing and unknown values share the last bin."""
    return _with_proportions({"kind": "categorical", "categories": list(categories)}, values)


def _jsonable(values: pd.Series) -> list[Any]:
    """Column values for JSON: NaN becomes null (json.dumps would write an invalid NaN)."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values.tolist()]


def build_profile(task: str, X: pd.DataFrame, predictions: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """The reference profile of one task: pure, for the stage and for tests."""
    schema = SCHEMAS[task]
    reference = settings["reference"]
    features = {}
    for spec in schema.features:
        column = X[spec.name]
        features[spec.name] = (categorical_profile(column, list(spec.categories)) if isinstance(spec, CategoryField)
                               else numeric_profile(column, reference["bins"]))
    predicted = pd.Series(predictions)
    if schema.kind is Kind.CLASSIFICATION:  # the class, under the target's name in a logged prediction
        prediction = {**categorical_profile(predicted, list(schema.classes)), "field": schema.target.name}
    else:
        prediction = {**numeric_profile(predicted.astype(float), reference["bins"]), "field": None}
    sample = X.assign(prediction=predictions)
    if len(sample) > reference["sample_rows"]:
        sample = sample.sample(reference["sample_rows"], random_state=reference["seed"])
    return {
        "version": PROFILE_VERSION,
        "task": task,
        "training_rows": len(X),
        "live": {"window": settings["live"]["window"], "every": settings["live"]["every"]},
        "features": features,
        "prediction": prediction,
        "sample": {column: _jsonable(sample[column]) for column in sample.columns},
    }


def main(argv: list[str] | None = None) -> None:
    start_stage()
    from stages.models import load_model
    from stages.rawdata import read_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    X, _ = read_split(args.task, "train")
    for role in ROLES:  # the served champion and challenger (stage `promote`), each with its own predictions
        model = load_model(served_model(args.task, role))
        profile = build_profile(args.task, X, model.predict(X), load_params()["monitoring"])
        with atomic_path(reference_profile(args.task, role)) as tmp:  # compact: the sample is 2000 rows
            tmp.write_text(json.dumps(profile, separators=(",", ":"), allow_nan=False) + "\n", encoding="utf-8")
        print(f"profile {args.task} {role}: {len(profile['features'])} features, {profile['training_rows']} "
              f"training rows, {len(profile['sample']['prediction'])} sample rows -> "
              f"{reference_profile(args.task, role)}")


if __name__ == "__main__":
    main()
