"""Peer 3: the housing service a user writes from BentoML's documentation (not part of the product).

BentoML's own idiom, kept deliberately: a `@bentoml.service` class holding the champion through
`BentoModel`, one `@bentoml.api(batchable=True)` taking a list of pydantic records (BentoML's adaptive batching
merges concurrent requests into one call), scikit-learn's predict on a DataFrame, and every prediction logged
with `bentoml.monitor` (JSON lines under DOCS_PEER_LOG_DIR). Served from bench/ on the same champion as the
project (`housing-regressor:latest` of the private BENTOML_HOME the harness builds).

    DOCS_PEER_LOG_DIR=/tmp/mon bentoml serve bench.docs_peer:HousingDocsPeer
    curl -X POST localhost:3000/housing/predict -H 'Content-Type: application/json' -d '{"records": [{...}]}'
"""

from __future__ import annotations

import os

import bentoml
import pandas as pd
from pydantic import BaseModel

MONITOR = "housing_predictions"
FIELDS = ("longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
          "households", "median_income")


class HousingRecord(BaseModel):
    longitude: float
    latitude: float
    housing_median_age: float
    total_rooms: float
    total_bedrooms: float | None = None
    population: float
    households: float
    median_income: float
    ocean_proximity: str | None = None


@bentoml.service(
    workers=int(os.environ.get("WORKERS", "1")),
    traffic={"timeout": 60},
    monitoring={"enabled": True, "type": "default",
                "options": {"log_path": os.environ.get("DOCS_PEER_LOG_DIR", "monitoring")}},
)
class HousingDocsPeer:
    model_ref = bentoml.models.BentoModel("housing-regressor:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)

    @bentoml.api(batchable=True, route="/housing/predict")
    def predict(self, records: list[HousingRecord]) -> list[float]:
        frame = pd.DataFrame([record.model_dump() for record in records])
        predictions = [float(p) for p in self.model.predict(frame)]
        with bentoml.monitor(MONITOR) as mon:
            for field in FIELDS:
                mon.log_batch(frame[field].tolist(), name=field, role="feature", data_type="numerical")
            mon.log_batch(frame["ocean_proximity"].tolist(), name="ocean_proximity", role="feature",
                          data_type="categorical")
            mon.log_batch(predictions, name="prediction", role="prediction", data_type="numerical")
        return predictions
