"""Shapley values of one prediction over a task's raw fields, against a background sample: exact for narrow
tasks, a seeded permutation estimate for wide ones.

Why over the raw fields: the housing model derives about 40 features from 9 raw fields (ratios, rotations,
distances, neighbour means), each mixing several of them, so an attribution to a derived feature does not
answer "which of the values I sent moved the price". The players here are the fields a client sends.

The game: the value of a coalition S is the mean prediction over the background rows b with the fields in S
taken from the explained record and the others from b (the interventional, "independent masker" value function
of shap). Both explainers below evaluate a fixed set of coalitions x background rows in ONE batched predict
call, which the compiled model runs fast, and turn the coalition values v into Shapley values with a fixed
(fields, coalitions) matrix, `phi = W @ v`. Doing it with numpy keeps shap, numba and llvmlite (about 150 MB)
out of the serving image. The service answers /<task>/explain with it and stage `explain` computes global
importance with it, through one factory, `shapley_explainer`, so both use the same method and settings.

- **Exact** (`ExactShapley`), up to `max_exact_fields` fields (params.yaml `explain.max_exact_fields`, 12 by
  default): every one of the 2**fields coalitions (housing 512, iris 16), W the Shapley weights. That is
  exactly what `shap.explainers.Exact` with `shap.maskers.Independent(background)` computes (it only orders
  the coalitions differently); tests/pipeline/test_explain_stage.py checks the two agree to 1e-6 on real rows.
  Cost: 2**fields x background rows through the model, 4,096 x B at 12 fields, doubling with each field more.
- **Sampled** (`PermutationShapley`), above it: antithetic permutation sampling. `samples` orderings of the
  fields (params.yaml `explain.samples`, 64 by default), half drawn at random from `seed`, the other half their
  reverses; walking each ordering, a field's contribution is v(S + i) - v(S), S the fields before it; phi is the
  mean over the orderings. An ordering and its reverse add a field to small and to large coalitions alike, which
  cancels much of the sampling error. The orderings are drawn once per explainer, so the same record always
  gets the same values. Cost: at most (samples x (fields - 1) + 2) x background rows through the model (each
  ordering's fields - 1 intermediate coalitions, plus the empty and full ones; coalitions shared between
  orderings are evaluated once): 898 x B for 15 fields and 64 samples, against 32,768 x B exactly.
  Measured against exact values (tests/unit/test_explain_sampled.py: 14 fields, 4 background rows, gradient
  boosting regression and random forest class probabilities fitted on generated data with interactions): the
  largest error of any field is 1.2 % (regression) and 1.6 % (classification) of the spread (max - min) of the
  record's exact values with seed 0, at most 2.9 % over seeds 0 to 3; 2 orderings instead of 64 give 6 % and
  14 %. The test fails above 5 %.

Both add up: sum(phi) == f(x) - base_value (to rounding), base_value the mean prediction over the background (every
ordering's contributions telescope to v(full) - v(empty), as the exact weights do).

Records travel as a float matrix, one column per raw field in schema order: numbers as they are (NaN where
missing), categories as their index in the schema (MISSING_CODE where absent or unknown), so a missing
`total_bedrooms` or `ocean_proximity` is a value like any other and is treated as predict treats it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from domain.schema import CategoryField, NumericField, TaskSchema

MISSING_CODE = -1.0  # an absent or unknown category (domain.features.UNKNOWN_CATEGORY: all one-hot columns 0)
# The most fields exact values may be asked for: 2**16 coalitions is already 65,536 model rows per background row.
EXACT_FIELDS_LIMIT = 16

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
    if not 0 < fields <= EXACT_FIELDS_LIMIT:
        raise ValueError(f"exact Shapley values need 1 to {EXACT_FIELDS_LIMIT} fields, got {fields}")
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


def permutation_design(fields: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The coalitions (masks, each once; the empty one first, the full one last) and W (fields, coalitions) of
    `samples` orderings of the fields: samples // 2 seeded random ones and their reverses. W[i] averages, over
    the orderings, +v(fields up to and including i) - v(fields before i)."""
    if fields < 1:
        raise ValueError(f"Shapley values need at least 1 field, got {fields}")
    if samples < 2 or samples % 2:
        raise ValueError(f"samples must be an even number >= 2 (orderings and their reverses), got {samples}")
    rng = np.random.default_rng(seed)
    forward = np.stack([rng.permutation(fields) for _ in range(samples // 2)])
    orders = np.concatenate([forward, forward[:, ::-1]])  # (samples, fields): field at each step
    position = np.argsort(orders, axis=1)  # position[p, i]: the step at which ordering p adds field i
    prefixes = position[:, None, :] < np.arange(fields + 1)[None, :, None]  # (samples, fields + 1, fields)
    # np.unique sorts the rows: all-False (empty coalition) first, all-True (full) last, as in the exact order
    masks, index = np.unique(prefixes.reshape(-1, fields), axis=0, return_inverse=True)
    index = np.asarray(index).reshape(samples, fields + 1)
    W = np.zeros((fields, len(masks)))
    for step in range(fields):
        np.add.at(W, (orders[:, step], index[:, step + 1]), 1.0 / samples)
        np.add.at(W, (orders[:, step], index[:, step]), -1.0 / samples)
    return masks, W


@dataclass(frozen=True)
class ShapleySettings:
    """How explanations are computed (params.yaml `explain`, packaged with the model's background so the
    service computes what stage `explain` did): exact values up to `max_exact_fields` fields, above it the
    permutation estimate from `samples` orderings drawn from `seed`."""

    max_exact_fields: int = 12
    samples: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"explainer setting {spec.name} must be an integer, got {value!r}")
        if not 0 <= self.max_exact_fields <= EXACT_FIELDS_LIMIT:
            raise ValueError(f"max_exact_fields must be 0 to {EXACT_FIELDS_LIMIT} (2**fields coalitions each), "
                             f"got {self.max_exact_fields}")
        if self.samples < 2 or self.samples % 2:
            raise ValueError(f"samples must be an even number >= 2 (orderings and their reverses), got {self.samples}")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None) -> ShapleySettings:
        """Settings from a mapping (the packaged "explainer" block); None or absent keys: the defaults."""
        settings = dict(settings or {})
        unknown = sorted(set(settings) - {spec.name for spec in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown explainer setting {unknown[0]!r}")
        return cls(**settings)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Explanation:
    """f(x), the background's mean prediction and each field's contribution (fields,) or (fields, classes)."""

    prediction: np.ndarray
    base_value: np.ndarray
    contributions: np.ndarray


class CoalitionShapley:
    """Shapley values from the values of a fixed set of coalitions (`masks`, the empty one first and the full
    one last) and a weight matrix `weights` (fields, coalitions): phi = weights @ v."""

    method: ClassVar[str]
    masks: np.ndarray
    weights: np.ndarray

    def __init__(self, schema: TaskSchema, background: np.ndarray) -> None:
        background = np.asarray(background, dtype=float)
        width = len(schema.features)
        if background.ndim != 2 or background.shape[1] != width or len(background) == 0:
            raise ValueError(f"background must be a non-empty (rows, {width}) field matrix, "
                             f"got shape {background.shape}")
        self.schema = schema
        self.background = background

    @property
    def rows_per_explanation(self) -> int:
        """What one explanation costs: rows through the model."""
        return len(self.masks) * len(self.background)

    def coalition_rows(self, x: np.ndarray) -> np.ndarray:
        """(coalitions * background rows, fields): x's fields where the coalition holds them, else the background
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


class ExactShapley(CoalitionShapley):
    """Exact Shapley values over the raw fields of `schema`, against `background` (a field matrix): all
    2**fields coalitions."""

    method = "exact"

    def __init__(self, schema: TaskSchema, background: np.ndarray) -> None:
        super().__init__(schema, background)
        self.masks = coalition_masks(len(schema.features))
        self.weights = shapley_matrix(len(schema.features))


class PermutationShapley(CoalitionShapley):
    """Shapley values over the raw fields of `schema` against `background`, estimated from `samples` orderings
    of the fields (antithetic: half seeded random, half their reverses); at most (samples x (fields - 1) + 2)
    coalitions, each x the background rows."""

    method = "sampled"

    def __init__(self, schema: TaskSchema, background: np.ndarray, samples: int = 64, seed: int = 0) -> None:
        super().__init__(schema, background)
        self.samples = samples
        self.masks, self.weights = permutation_design(len(schema.features), samples, seed)


def shapley_explainer(schema: TaskSchema, background: np.ndarray,
                      settings: ShapleySettings | Mapping[str, Any] | None = None) -> CoalitionShapley:
    """The explainer for `schema` (the one stage `explain` and the service both use): exact values up to
    `settings.max_exact_fields` fields, the permutation estimate above. None: the default settings."""
    if not isinstance(settings, ShapleySettings):
        settings = ShapleySettings.from_mapping(settings)
    if len(schema.features) <= settings.max_exact_fields:
        return ExactShapley(schema, background)
    return PermutationShapley(schema, background, settings.samples, settings.seed)
