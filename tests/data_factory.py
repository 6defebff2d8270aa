"""Small, valid, generated raw data for tests that do not need the real dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.schema import OCEAN_PROXIMITY


def housing_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Raw housing rows in the census file's layout, with a learnable target.

    Value rises with income and towards the coast (west), like the real data, so models
    trained on it score well above zero and behavioural checks mean something.
    """
    rng = np.random.default_rng(seed)
    longitude = rng.uniform(-124.0, -114.5, rows).round(2)
    latitude = rng.uniform(32.6, 41.9, rows).round(2)
    households = rng.integers(50, 1500, rows).astype(float)
    total_rooms = (households * rng.uniform(3.5, 7.0, rows)).round()
    total_bedrooms = (total_rooms * rng.uniform(0.15, 0.25, rows)).round()
    total_bedrooms[rng.choice(rows, size=max(1, rows // 100), replace=False)] = np.nan
    population = (households * rng.uniform(2.0, 4.0, rows)).round()
    median_income = rng.uniform(0.5, 12.0, rows).round(4)
    value = 40_000 + 35_000 * median_income + 12_000 * (-114.0 - longitude) + rng.normal(0, 20_000, rows)
    return pd.DataFrame({
        "longitude": longitude,
        "latitude": latitude,
        "housing_median_age": rng.integers(1, 53, rows).astype(float),
        "total_rooms": total_rooms,
        "total_bedrooms": total_bedrooms,
        "population": population,
        "households": households,
        "median_income": median_income,
        "median_house_value": np.clip(value, 15_000, 500_001).round(),
        "ocean_proximity": rng.choice(OCEAN_PROXIMITY[:4], rows),
    })
