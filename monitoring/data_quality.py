"""Missing values per feature: a data-quality finding of their own, apart from drift.

A client that never sends the optional `ocean_proximity` has not moved the population the model sees, it
sends less of it: that reads "100 % missing (reference 0 %)", a finding with its own threshold
(params.yaml `monitoring.report.missing_share`) and exit code, while drift is judged on the values that
were sent (monitoring/evidently_drift.py). Only an increase over the reference counts: a feature sent more
often than in training is no problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


def percent(share: float) -> str:
    """0.125 -> '12.5 %', 1.0 -> '100 %', 0.0 -> '0 %'."""
    return f"{100 * share:.1f}".removesuffix(".0") + " %"


@dataclass(frozen=True)
class MissingValues:
    """How often one feature was missing in the window and in the reference sample."""

    current_share: float
    reference_share: float
    threshold: float  # a finding when current_share - reference_share reaches this

    @property
    def flagged(self) -> bool:
        return self.current_share - self.reference_share >= self.threshold

    @property
    def message(self) -> str:
        return f"{percent(self.current_share)} missing (reference {percent(self.reference_share)})"

    def as_dict(self) -> dict[str, Any]:
        return {"current_share": round(self.current_share, 4), "reference_share": round(self.reference_share, 4),
                "threshold": self.threshold, "flagged": self.flagged, "message": self.message}


def missing_values(reference: pd.DataFrame, current: pd.DataFrame, features: list[str],
                   threshold: float) -> dict[str, MissingValues]:
    """Every feature's missing share in `current` against `reference` (frames as evidently_drift.frames gives)."""
    return {name: MissingValues(float(current[name].isna().mean()) if len(current) else 0.0,
                                float(reference[name].isna().mean()) if len(reference) else 0.0, threshold)
            for name in features}


def flagged(findings: dict[str, MissingValues]) -> list[str]:
    return [name for name, finding in findings.items() if finding.flagged]
