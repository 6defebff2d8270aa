"""Drift statistics shared by the reference profile (stage `profile`) and the live gauges (service).

The reference profile stores, for every feature and for the prediction, the training data's share
in each bin: deciles for numbers, one bin per category, plus a last bin for missing or unknown
values. Traffic binned by the same rule gives a population stability index (PSI) per column.
One binning function serves both sides, so the pipeline and the service cannot disagree on a bin.

numpy and the standard library only: part of the serving image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PROFILE_VERSION = 1
# Floor for empty bins: PSI has log(actual / expected) and must stay finite.
EPSILON = 1e-4


def n_bins(spec: dict[str, Any]) -> int:
    """Bins of a profiled column, the last one for missing (or unknown) values."""
    return len(spec["edges"]) + 2 if spec["kind"] == "numeric" else len(spec["categories"]) + 1


def bin_indices(spec: dict[str, Any], values: Sequence[Any]) -> np.ndarray:
    """Bin of each value. Numbers: bin i holds edges[i-1] <= x < edges[i] (searchsorted right);
    categories: their position. None, NaN and unknown categories: the last bin."""
    missing = n_bins(spec) - 1
    if spec["kind"] == "numeric":
        numbers = np.array(values, dtype=float)  # None -> NaN
        indices = np.searchsorted(spec["edges"], numbers, side="right")
        indices[np.isnan(numbers)] = missing
        return indices
    position = {category: i for i, category in enumerate(spec["categories"])}
    return np.fromiter((position.get(v, missing) for v in values), dtype=np.int64, count=len(values))


def psi(expected: Any, actual: Any) -> Any:
    """Population stability index of bin proportions (same bins; along the last axis, so a
    columns x bins matrix gives one PSI per column). Empty bins count as EPSILON.

    Rule of thumb: below 0.1 stable, 0.1 to 0.2 moving, above 0.2 drifted.
    """
    e = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def prediction_value(spec: dict[str, Any], logged: Any) -> Any:
    """The value drift is measured on, from a prediction as it is logged.

    Housing logs a number; iris logs {"species": ..., "probabilities": ...}: the profile's
    prediction spec names the field (`field`), so the service and the offline report agree.
    """
    field = spec.get("field")
    return logged[field] if field else logged
