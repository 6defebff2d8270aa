"""Peer 2: the seed project's serving design, rebuilt for comparison (not part of the product).

What the seed did per request, kept deliberately: a FastAPI sync endpoint with a (lax) pydantic
model; a one-row pandas DataFrame built from the request; the seed's ratio features computed in
pandas; the model's predict; a log line; one SQLite connect + INSERT + COMMIT + close per
prediction (default journal mode and synchronous setting). It serves the same champion file as
the project, models/housing/champion.joblib; that model derives its own features, so the seed's
pandas feature work is extra cost the seed paid, faithfully reproduced, not an input to predict.

    SEED_MODEL=models/housing/champion.joblib SEED_DB=/tmp/seed.db uvicorn bench.seed_app:app
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import UTC, datetime

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
logger = logging.getLogger("seed")

MODEL = joblib.load(os.environ["SEED_MODEL"])
DB_PATH = os.environ["SEED_DB"]
RAW_COLUMNS = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
               "households", "median_income", "ocean_proximity"]

with sqlite3.connect(DB_PATH) as _db:
    _db.execute("CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT, "
                "inputs TEXT, prediction REAL)")

app = FastAPI(title="seed housing API")


class HousingInput(BaseModel):
    longitude: float
    latitude: float
    housing_median_age: float
    total_rooms: float
    total_bedrooms: float
    population: float
    households: float
    median_income: float
    ocean_proximity: str = "INLAND"


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/housing/predict")
def predict(data: HousingInput) -> dict[str, float]:
    frame = pd.DataFrame([data.model_dump()])
    frame["rooms_per_household"] = frame["total_rooms"] / frame["households"]
    frame["bedrooms_per_room"] = frame["total_bedrooms"] / frame["total_rooms"]
    frame["population_per_household"] = frame["population"] / frame["households"]
    prediction = float(MODEL.predict(frame)[0])
    logger.info("prediction %.1f for %s", prediction, data.model_dump_json())
    connection = sqlite3.connect(DB_PATH, timeout=30)
    try:
        connection.execute("INSERT INTO predictions (ts, inputs, prediction) VALUES (?, ?, ?)",
                           (datetime.now(UTC).isoformat(), data.model_dump_json(), prediction))
        connection.commit()
    finally:
        connection.close()
    return {"prediction": prediction}
