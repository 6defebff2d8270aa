"""A seeded, bounded, uniform sample of a window's answered predictions, drawn by the store.

Drift and missing values are judged on it (monitoring/monitor.py): at most `rows` rows come back, whatever the
window holds. The store takes the `rows` rows whose sample key (prediction_log/sample_key.py) comes first after
the seed's shift, a top-k sort in bounded memory over the window's index range; the keys are hashes of each
row's identity, so the sample is uniform and the same rows come from SQLite and PostgreSQL for the same seed
and window. A window no larger than `rows` is read whole.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitoring.logquery import Window
from prediction_log.sample_key import KEY_BITS, KEY_SPACE, fallback_key, shift
from prediction_log.schema import SAMPLE_KEY_VERSION

COLUMNS = ["request_id", "position", "model", "inputs", "prediction"]
METHOD = (f"the store's rows with the smallest (sample_key + shift(seed)) mod 2^{KEY_BITS}; sample_key is a hash "
          "of each row's task, request id, position, arm and time, stored when the row was logged")


@dataclass(frozen=True)
class Sample:
    """The drawn rows (COLUMNS; inputs and prediction decoded) and how they were drawn."""

    rows: pd.DataFrame
    window_rows: int  # answered predictions in the window
    seed: int

    @property
    def whole(self) -> bool:
        return len(self.rows) >= self.window_rows

    def margin(self) -> float:
        """95 % margin of a share (such as a missing share) measured on the sample instead of the whole window:
        1.96 sqrt(p (1 - p) / k (1 - k / n)) at its widest (p = 0.5), with the finite-population correction."""
        k, n = len(self.rows), self.window_rows
        if k == 0 or k >= n:
            return 0.0
        return 1.96 * math.sqrt(0.25 / k * (1 - k / n))

    def describe(self) -> dict[str, Any]:
        return {"window_rows": self.window_rows, "rows": len(self.rows), "seed": self.seed,
                "whole_window": self.whole, "share_margin_95": round(self.margin(), 4),
                "method": "the whole window" if self.whole else f"uniform, drawn by the store: {METHOD}"}


def draw(window: Window, rows: int, seed: int, window_rows: int) -> Sample:
    """Up to `rows` answered predictions of the window, uniform for `seed`; `window_rows` is how many it holds."""
    mark, modulo = window.dialect.mark, window.dialect.modulo
    key = fallback_key(modulo)
    if window.version >= SAMPLE_KEY_VERSION:
        key = f"COALESCE(sample_key, {key})"
    source, args = window.where()
    position = "position" if window.has_arms else "0"  # a log from before positions: each row its request's first
    found = window.rows(f"SELECT request_id, {position}, model, inputs, prediction {source} "
                        f"ORDER BY ({key} + {mark}) {modulo} {KEY_SPACE}, request_id{', position' * window.has_arms} "
                        f"LIMIT {mark}", (*args, shift(seed), rows))
    frame = pd.DataFrame(found, columns=COLUMNS)
    for column in ("inputs", "prediction"):
        frame[column] = [json.loads(value) if isinstance(value, str) else value for value in frame[column]]
    return Sample(frame, window_rows, seed)
