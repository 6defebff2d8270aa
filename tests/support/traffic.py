"""Client traffic for tests against live servers and logs: rows of the session's training split, drifted on demand.

Traffic drawn from the training distribution must not drift; the same traffic with median_income x 1.5 must
flag that feature and no other (tests/service/test_monitoring.py and test_prometheus_alerts.py rely on both).
"""

from __future__ import annotations

from typing import Any

import httpx
import pandas as pd

from tests.support.dvc_repo import PipelineRepo

TARGETS = {"housing": "median_house_value", "iris": "species"}


def training_inputs(repo: PipelineRepo, task: str) -> pd.DataFrame:
    """Complete training rows: a client cannot send a missing total_bedrooms."""
    return pd.read_csv(repo.path / f"data/prepared/{task}/train.csv").drop(columns=TARGETS[task]).dropna()


def traffic(repo: PipelineRepo, task: str, n: int, seed: int, income_factor: float = 1.0) -> list[dict[str, Any]]:
    """n requests drawn (with replacement) from the training split, median_income scaled by income_factor."""
    rows = training_inputs(repo, task).sample(n, replace=True, random_state=seed)
    if income_factor != 1.0:
        rows["median_income"] = rows["median_income"] * income_factor
    return rows.to_dict(orient="records")


def send_housing(url: str, records: list[dict[str, Any]], batch: int = 100) -> None:
    """POST the records to /housing/predict_batch, `batch` per request; every answer must be 200."""
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(records), batch):
            response = client.post(f"{url}/housing/predict_batch", json={"records": records[start:start + batch]})
            assert response.status_code == 200, response.text
