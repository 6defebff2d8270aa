"""Live drift: per-feature PSI over each worker's last N requests, exported on /metrics.

Why PSI on reference bins: the reference profile (stage `profile`) stores, for every feature and
for the prediction, the training data's share in each bin (deciles for numbers, one bin per
category, plus a last bin for missing or unknown values). A window's share in the same bins gives
a population stability index per column: cheap, bounded work, no reference data at serving time.

Why it is cheap on the request path: a request only appends its rows to a pending list. Every
`every` rows (params `monitoring.live`), the pending rows are binned in one vectorised step, the
window slides, and the scores are recomputed and published: the cost is amortised, and one
request in `every` pays a fraction of a millisecond. The full statistical report (Evidently,
`make monitor`) runs offline on the prediction log instead.

Scores are published only once the window is full: a freshly started worker with a handful of
requests would otherwise report noise. Prometheus aggregates the workers with `livemax` (the worst
live worker), so one worker seeing drifted traffic is enough to alert.

Part of the serving image: numpy and the standard library only. stages/profile.py bins the
training data with `bin_indices` below, so both sides use one binning rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PROFILE_VERSION = 1
# Floor for empty bins: PSI has log(actual / expected) and must stay finite.
EPSILON = 1e-4

Publisher = Callable[[dict[str, float], float], None]


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


class DriftWindow:
    """The last `window` rows of one task in this worker, as bin indices (a ring buffer)."""

    def __init__(self, profile: dict[str, Any], publish: Publisher | None = None,
                 window: int | None = None, every: int | None = None) -> None:
        if profile.get("version") != PROFILE_VERSION:
            raise ValueError(f"reference profile version {profile.get('version')!r}; expected {PROFILE_VERSION}")
        self.size = int(window or profile["live"]["window"])
        self.every = int(every or profile["live"]["every"])
        self.features = list(profile["features"])
        self._specs = [{**spec, "edges": np.asarray(spec["edges"], dtype=float)} if spec["kind"] == "numeric"
                       else spec for spec in [*(profile["features"][name] for name in self.features),
                                              profile["prediction"]]]
        # Expected proportions as one (columns x widest) matrix, zero-padded: a padding bin is empty
        # on both sides and adds nothing to the PSI, so all columns are scored in one numpy expression.
        self._width = max(n_bins(spec) for spec in self._specs)
        self._expected = np.zeros((len(self._specs), self._width))
        for j, spec in enumerate(self._specs):
            self._expected[j, :n_bins(spec)] = spec["proportions"]
        self._offsets = np.arange(len(self._specs)) * self._width
        self._ring = np.zeros((self.size, len(self._specs)), dtype=np.int64)
        self._position = 0
        self._filled = 0
        self._pending_rows: list[dict[str, Any]] = []
        self._pending_predictions: list[Any] = []
        self._publish = publish

    @property
    def full(self) -> bool:
        return self._filled == self.size

    def add(self, rows: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> None:
        """Queue rows (inputs and predictions as logged); every `every` rows, slide and publish."""
        self._pending_rows.extend(rows)
        self._pending_predictions.extend(predictions)
        if len(self._pending_rows) >= self.every:
            self._slide()
            if self._publish is not None and self.full:
                self._publish(*self.scores())

    def _slide(self) -> None:
        rows, predictions = self._pending_rows[-self.size:], self._pending_predictions[-self.size:]
        self._pending_rows, self._pending_predictions = [], []
        columns = [[row.get(name) for row in rows] for name in self.features]
        columns.append([prediction_value(self._specs[-1], p) for p in predictions])
        batch = np.column_stack([bin_indices(spec, values) for spec, values in zip(self._specs, columns,
                                                                                    strict=True)])
        slots = (self._position + np.arange(len(batch))) % self.size
        self._ring[slots] = batch
        self._position = int(slots[-1] + 1) % self.size
        self._filled = min(self.size, self._filled + len(batch))

    def scores(self) -> tuple[dict[str, float], float]:
        """(PSI per feature, PSI of the prediction) over the rows in the window."""
        if self._pending_rows:
            self._slide()
        counts = np.bincount((self._ring[:self._filled] + self._offsets).ravel(), minlength=self._expected.size)
        values = psi(self._expected, counts.reshape(self._expected.shape) / max(self._filled, 1)).tolist()
        return dict(zip(self.features, values[:-1], strict=True)), values[-1]


def gauge_publisher(task: str, features: Sequence[str]) -> Publisher:
    """Publish scores to the Prometheus gauges. The labelled series are created at the first publish:
    created earlier they would show 0.0 ("no drift") before the window has seen any traffic."""
    from bento_service import metrics

    children: dict[str, Any] = {}

    def publish(scores: dict[str, float], prediction_score: float) -> None:
        if not children:
            children.update({name: metrics.FEATURE_DRIFT.labels(task, name) for name in features})
            children[None] = metrics.PREDICTION_DRIFT.labels(task)
        for name, score in scores.items():
            children[name].set(score)
        children[None].set(prediction_score)
    return publish
