"""Live drift: per-feature PSI over each worker's last N requests, exported on /metrics.

A request only appends its rows to a pending list. Every `every` rows (params `monitoring.live`,
carried in the reference profile), the pending rows are binned in one vectorised step with the
profile's own binning rule (domain/drift.py), the window slides, and the scores are recomputed and
published: one request in `every` pays a fraction of a millisecond. The full statistical report
(Evidently, `make monitor`) runs offline on the prediction log instead.

Scores are published only once the window is full: a freshly started worker with a handful of
requests would otherwise report noise. Prometheus aggregates the workers with `livemax` (the worst
live worker), so one worker seeing drifted traffic is enough to alert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bento_service import metrics
from domain.drift import PROFILE_VERSION, bin_indices, n_bins, prediction_value, psi

Publisher = Callable[[dict[str, float], float], None]


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
    children: dict[str, Any] = {}

    def publish(scores: dict[str, float], prediction_score: float) -> None:
        if not children:
            children.update({name: metrics.FEATURE_DRIFT.labels(task, name) for name in features})
            children[None] = metrics.PREDICTION_DRIFT.labels(task)
        for name, score in scores.items():
            children[name].set(score)
        children[None].set(prediction_score)
    return publish
