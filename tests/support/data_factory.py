"""Small, valid, generated raw data for tests that do not need the real dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support.tasks import HOUSING, OCEAN_PROXIMITY


def housing_frame(rows: int = 400, seed: int = 0, exact: bool = False) -> pd.DataFrame:
    """Raw housing rows in the census file's layout, with a learnable target `median_house_value`.

    Value rises with income and towards the coast (west), like the real data, so models trained on
    it score well above zero and behavioural checks mean something. By default the values look like
    the census file's: counts rounded, 1 % of `total_bedrooms` missing, the target clipped at the
    census cap. `exact=True` keeps every value continuous and unclipped instead: the leakage tests
    compare a row's neighbour feature with its own target, and tied targets would make that lie.
    """
    rng = np.random.default_rng(seed)
    households = rng.integers(50, 1500, rows).astype(float)
    total_rooms = households * rng.uniform(3.5, 7.0, rows)
    total_bedrooms = total_rooms * rng.uniform(0.15, 0.25, rows)
    population = households * rng.uniform(2.0, 4.0, rows)
    frame = pd.DataFrame({
        "longitude": rng.uniform(-124.0, -114.5, rows),
        "latitude": rng.uniform(32.6, 41.9, rows),
        "housing_median_age": rng.integers(1, 53, rows).astype(float),
        "total_rooms": total_rooms,
        "total_bedrooms": total_bedrooms,
        "population": population,
        "households": households,
        "median_income": rng.uniform(0.5, 12.0, rows),
        "ocean_proximity": rng.choice(OCEAN_PROXIMITY[:4], rows),
    })
    value = (40_000 + 35_000 * frame["median_income"] + 12_000 * (-114.0 - frame["longitude"])
             + rng.normal(0, 20_000, rows))
    if exact:
        return frame[HOUSING.feature_names].assign(median_house_value=value)
    frame = frame.round({"longitude": 2, "latitude": 2, "total_rooms": 0, "total_bedrooms": 0, "population": 0,
                         "median_income": 4})
    frame.loc[rng.choice(rows, size=max(1, rows // 100), replace=False), "total_bedrooms"] = np.nan
    frame.insert(len(frame.columns) - 1, "median_house_value", np.clip(value, 15_000, 500_001).round())
    return frame  # the census file's column order: the target before ocean_proximity


def run_args(summary: dict) -> dict:
    """The data-related arguments of a logged run: a dummy raw-data md5, the candidate's own input example
    as the rows its latency is timed on, and no datasets (these tests have no prepared splits)."""
    return {"raw_md5": "0" * 32, "latency_rows": pd.DataFrame(summary["input_example"]), "datasets": {}}
