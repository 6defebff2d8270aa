"""Request bodies: real rows of the housing test split, in each server's request format.

Real rows (not one repeated row) so no server benefits from a cache, and the same rows for
every server so they do the same work.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

TARGET = "median_house_value"


def housing_rows(repo: Path, n: int) -> list[dict[str, Any]]:
    """Up to n complete rows of data/prepared/housing/test.csv as request records (no target).

    Rows with a missing field are skipped: the project's API treats every numeric field as required.
    """
    frame = pd.read_csv(repo / "data" / "prepared" / "housing" / "test.csv").drop(columns=TARGET).dropna()
    rows = []
    for record in frame.head(n).to_dict(orient="records"):
        rows.append({k: (float(v) if isinstance(v, int | float) else v) for k, v in record.items()
                     if not (isinstance(v, float) and math.isnan(v))})
    if not rows:
        raise ValueError(f"no complete rows in {repo}/data/prepared/housing/test.csv")
    return rows


def project_body(row: dict[str, Any]) -> bytes:
    """POST /housing/predict (the project) and the seed app: the record itself."""
    return json.dumps(row).encode()


def mlflow_body(row: dict[str, Any]) -> bytes:
    """POST /invocations (mlflow models serve): pandas records orientation."""
    return json.dumps({"dataframe_records": [row]}).encode()


def docs_peer_body(row: dict[str, Any]) -> bytes:
    """POST /housing/predict of bench/docs_peer.py: a batchable API takes a list, here of one record."""
    return json.dumps({"records": [row]}).encode()


def batch_body(rows: list[dict[str, Any]]) -> bytes:
    """POST /housing/predict_batch (the project)."""
    return json.dumps({"records": rows}).encode()
