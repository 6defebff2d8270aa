"""Live drift: per-feature PSI over each worker's last N requests, exported on /metrics.

A request only appends its rows to a pending list. Every `every` rows (params `monitoring.live`,
carried in the reference profile), the pending rows are binned in one vectorised step with the
profile's own binning rule (domain/drift.py), the window slides, and the scores are recomputed and
published: one request in `every` pays a fraction of a millisecond. The full statistical report
(Evidently, `make monitor`) runs offline on the prediction log instead.

Drift is judged on the values that were sent: each column's missing bin (None, NaN) is left out of the
PSI on both sides, and the share of missing values is a gauge of its own, `feature_missing_share`
(the offline monitor does the same, monitoring/data_quality.py). A client that never sends the optional
`ocean_proximity` is then a data-quality finding, not 100 % "drift".

Scores are published only once the window is full: a freshly started worker with a handful of
requests would otherwise report noise. Prometheus aggregates the workers with `livemax` (the worst
live worker), so one worker seeing drifted traffic is enough to alert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from bento_service import metrics
from domain.drift import PROFILE_VERSION, bin_indices, n_bins, prediction_value, psi

Publisher = Callable[["WindowScores"], None]


class WindowScores(NamedTuple):
    """What one window says: PSI per feature over the values sent, PSI of the predictions, and the share
    of rows where each feature was missing. A feature with no value sent in the window has no PSI (NaN)."""

    features: dict[str, float]
    prediction: float
    missing: dict[str, float]


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
        # The missing bin of each column (the last of its own bins) is left out of the PSI on both sides.
        self._missing_bins = np.array([n_bins(spec) - 1 for spec in self._specs])
        self._sent = np.ones_like(self._expected, dtype=bool)
        self._sent[np.arange(len(self._specs)), self._missing_bins] = False
        expected_sent = np.where(self._sent, self._expected, 0.0)
        self._expected_sent = expected_sent / np.clip(expected_sent.sum(axis=1, keepdims=True), 1e-12, None)
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
                self._publish(self.scores())

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

    def scores(self) -> WindowScores:
        """PSI per feature over the values sent, PSI of the prediction, missing share per feature."""
        if self._pending_rows:
            self._slide()
        counts = np.bincount((self._ring[:self._filled] + self._offsets).ravel(), minlength=self._expected.size)
        counts = counts.reshape(self._expected.shape).astype(float)
        missing = counts[np.arange(len(self._specs)), self._missing_bins] / max(self._filled, 1)
        sent = np.where(self._sent, counts, 0.0)
        sent_rows = sent.sum(axis=1)
        values = psi(self._expected_sent, sent / np.clip(sent_rows[:, None], 1, None))
        values = np.where(sent_rows > 0, values, np.nan).tolist()
        return WindowScores(dict(zip(self.features, values[:-1], strict=True)), values[-1],
                            dict(zip(self.features, missing[:-1].tolist(), strict=True)))


def gauge_publisher(task: str, features: Sequence[str]) -> Publisher:
    """Publish scores to the Prometheus gauges. The labelled series are created at the first publish:
    created earlier they would show 0.0 ("no drift") before the window has seen any traffic."""
    drift: dict[str | None, Any] = {}
    missing: dict[str, Any] = {}

    def publish(scores: WindowScores) -> None:
        if not drift:
            drift.update({name: metrics.FEATURE_DRIFT.labels(task, name) for name in features})
            drift[None] = metrics.PREDICTION_DRIFT.labels(task)
            missing.update({name: metrics.FEATURE_MISSING.labels(task, name) for name in features})
        for name, score in scores.features.items():
            if score == score:  # not NaN: no value sent in the window keeps the last score
                drift[name].set(score)
            missing[name].set(scores.missing[name])
        drift[None].set(scores.prediction)
    return publish
