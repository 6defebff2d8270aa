"""Exact Shapley values of one prediction over a task's raw fields, against a background sample.

Why over the raw fields: the housing model derives about 40 features from 9 raw fields (ratios, rotations,
distances, neighbour means), each mixing several of them, so an attribution to a derived feature does not
answer "which of the values I sent moved the price". The players here are the fields a client sends.

Why exact, and why written out here instead of calling shap in the service: with 9 raw fields there are
2**9 = 512 coalitions (iris: 16), few enough to evaluate every one of them. The value of a coalition S is
the mean prediction over the background rows b with the fields in S taken from the explained record and the
others from b (the interventional, "independent masker" value function of shap); the Shapley value of field
i is the weighted sum over coalitions, `phi = W @ v` with a fixed (fields, 2**fields) matrix W. That is
exactly what `shap.explainers.Exact` with `shap.maskers.Independent(background)` computes (it only orders
the coalitions differently); `tests/unit/test_explain.py` checks the two agree to 1e-6 on real rows. Doing
it with numpy keeps shap, numba and llvmlite (about 150 MB) out of the serving image, and it evaluates all
coalitions x background rows in ONE batched predict call, which the compiled model runs fast. The pipeline's
global importance (stage `explain`) is computed with this code too.

The values add up: sum(phi) == f(x) - base_value, base_value the mean prediction over the background.

Records travel as a float matrix, one column per raw field in schema order: numbers as they are (NaN where
missing), categories as their index in the schema (MISSING_CODE where absent or unknown), so a missing
`total_bedrooms` or `ocean_proximity` is a value like any other and is treated as predict treats it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from domain.schema import CategoryField, NumericField, TaskSchema

MISSING_CODE = -1.0  # an absent or unknown category (domain.features.UNKNOWN_CATEGORY: all one-hot columns 0)
# The most fields exact Shapley values are computed for: 2**fields coalitions per background row.
MAX_FIELDS = 12

Model = Callable[[np.ndarray], np.ndarray]  # field matrix (rows, fields) -> (rows,) or (rows, classes)


def encode(schema: TaskSchema, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Raw records (dicts; None or absent = missing) as the field matrix (rows, fields)."""
    out = np.empty((len(records), len(schema.features)))
    for j, spec in enumerate(schema.features):
        if isinstance(spec, CategoryField):
            codes = {category: float(code) for code, category in enumerate(spec.categories)}
            out[:, j] = [codes.get(record.get(spec.name), MISSING_CODE) for record in records]
        else:
            out[:, j] = [math.nan if record.get(spec.name) is None else float(record[spec.name])
                         for record in records]
    return out


def decode(schema: TaskSchema, matrix: np.ndarray) -> dict[str, list[Any]]:
    """The field matrix back as columns of raw values (None where missing), e.g. for a DataFrame."""
    columns: dict[str, list[Any]] = {}
    for j, spec in enumerate(schema.features):
        if isinstance(spec, CategoryField):
            columns[spec.name] = [spec.categories[int(c)] if c >= 0 else None for c in matrix[:, j]]
        else:
            columns[spec.name] = [None if math.isnan(v) else float(v) for v in matrix[:, j]]
    return columns


def frame_model(schema: TaskSchema, predict: Callable[[pd.DataFrame], np.ndarray]) -> Model:
    """A model of raw-field DataFrames (scikit-learn's `predict` or `predict_proba`) as a field-matrix model."""
    return lambda matrix: predict(pd.DataFrame(decode(schema, matrix), columns=schema.feature_names))


def arrays_model(schema: TaskSchema, predict_arrays: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Model:
    """A model of (numeric fields in schema order, category codes) arrays, the compiled housing model's fast
    path (`CompiledModel.predict_arrays`), as a field-matrix model: no records, no DataFrame."""
    numeric = [j for j, spec in enumerate(schema.features) if isinstance(spec, NumericField)]
    category = [j for j, spec in enumerate(schema.features) if isinstance(spec, CategoryField)]
    if len(category) != 1:
        raise ValueError(f"{schema.task}: the array path takes exactly one category field, not {len(category)}")
    return lambda matrix: predict_arrays(matrix[:, numeric], matrix[:, category[0]].astype(int))


def coalition_masks(fields: int) -> np.ndarray:
    """Every coalition as a boolean row (2**fields, fields); row k holds field i iff bit i of k is set."""
    if not 0 < fields <= MAX_FIELDS:
        raise ValueError(f"exact Shapley values need 1 to {MAX_FIELDS} fields, got {fields}")
    return ((np.arange(2**fields)[:, None] >> np.arange(fields)) & 1).astype(bool)


def shapley_matrix(fields: int) -> np.ndarray:
    """W (fields, 2**fields) with phi = W @ v for coalition values v: W[i, S] = (|S|-1)!(n-|S|)!/n! when i is
    in S, -|S|!(n-|S|-1)!/n! when it is not (each marginal contribution v(S + i) - v(S), weighted)."""
    masks = coalition_masks(fields)
    sizes = masks.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(fields - s - 1) / math.factorial(fields)
                       for s in range(fields)])
    W = np.zeros((fields, len(masks)))
    for i in range(fields):
        inside = masks[:, i]
        W[i, inside] = weight[sizes[inside] - 1]
        W[i, ~inside] = -weight[sizes[~inside]]
    return W


@dataclass(frozen=True)
class Explanation:
    """f(x), the background's mean prediction and each field's contribution (fields,) or (fields, classes)."""

    prediction: np.ndarray
    base_value: np.ndarray
    contributions: np.ndarray


class ExactShapley:
    """Exact Shapley values over the raw fields of `schema`, against `background` (a field matrix)."""

    def __init__(self, schema: TaskSchema, background: np.ndarray) -> None:
        background = np.asarray(background, dtype=float)
        fields = len(schema.features)
        if background.ndim != 2 or background.shape[1] != fields or len(background) == 0:
            raise ValueError(f"background must be a non-empty (rows, {fields}) field matrix, "
                             f"got shape {background.shape}")
        self.schema = schema
        self.background = background
        self.masks = coalition_masks(fields)
        self.weights = shapley_matrix(fields)

    @property
    def rows_per_explanation(self) -> int:
        """What one explanation costs: rows through the model."""
        return len(self.masks) * len(self.background)

    def coalition_rows(self, x: np.ndarray) -> np.ndarray:
        """(2**fields * background rows, fields): x's fields where the coalition holds them, else the background
        row's; coalition-major, so the block of coalition k is rows k*B to (k+1)*B."""
        mixed = np.where(self.masks[:, None, :], np.asarray(x, dtype=float)[None, None, :], self.background[None])
        return mixed.reshape(-1, self.background.shape[1])

    def explain(self, x: np.ndarray, model: Model) -> Explanation:
        """One record's field vector x (fields,) explained with `model` in one batched call."""
        predictions = np.asarray(model(self.coalition_rows(x)), dtype=float)
        values = predictions.reshape(len(self.masks), len(self.background), *predictions.shape[1:]).mean(axis=1)
        # the full coalition's rows are x itself, B times: its first row is f(x) as predict computes it
        prediction = predictions[(len(self.masks) - 1) * len(self.background)]
        # v(full) - v(empty) is what the weights distribute; replace v(full) by f(x) exactly so the sum is
        # f(x) - base even where the mean of B equal floats rounds
        values[-1] = prediction
        return Explanation(prediction=prediction, base_value=values[0], contributions=self.weights @ values)
