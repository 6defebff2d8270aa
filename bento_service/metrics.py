"""Custom Prometheus metrics, shown on BentoML's /metrics next to its own request metrics.

Module-level `prometheus_client` objects: BentoML runs workers in Prometheus multiprocess
mode and aggregates them on /metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter("predictions", "Records predicted, by task and model", ["task", "model"])
HOUSING_VALUE = Histogram(
    "housing_prediction_value_usd", "Predicted median house value (US dollars)",
    buckets=(50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 350_000, 400_000, 450_000, 500_000, 600_000),
)
IRIS_SPECIES = Counter("iris_predicted_species", "Predicted iris species", ["species"])
VALIDATION_FAILURES = Counter("validation_failures", "Rejected requests by task and field", ["task", "field"])
LOG_WRITE_FAILURES = Counter("prediction_log_write_failures", "Requests answered 503 because the log failed")
BATCH_ROWS = Histogram("prediction_batch_rows", "Rows per model call (micro-batching)", ["task"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
# Live drift (bento_service/drift.py): PSI of each worker's last window of requests against the
# training reference. `livemax`: the worst live worker; a dead worker's value disappears with it.
FEATURE_DRIFT = Gauge("feature_drift_score", "PSI of a feature over the last requests vs training (>= 0.2: drifted)",
                      ["task", "feature"], multiprocess_mode="livemax")
PREDICTION_DRIFT = Gauge("prediction_drift_score", "PSI of the predictions over the last requests vs training",
                         ["task"], multiprocess_mode="livemax")
