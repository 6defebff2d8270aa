"""Custom Prometheus metrics, shown on BentoML's /metrics next to its own request metrics.

Module-level `prometheus_client` objects: BentoML runs workers in Prometheus multiprocess
mode and aggregates them on /metrics. Every label value comes from a closed set (task names,
model tags, schema fields and classes; a field a client invents is counted as `unknown`, see
bento_service/rejections.py), so no client can grow the number of series.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, multiprocess

from domain.schema import SCHEMAS, Kind

# Answered records by the arm that answered them: champion, or challenger in A/B mode (shadow predictions are counted
# apart, SHADOW_PREDICTIONS: they are not answers).
PREDICTIONS = Counter("predictions", "Records predicted, by task, model and answering arm", ["task", "model", "arm"])
# Each task's predictions: a histogram of values (regression) or a count per class (classification);
# names and buckets from the task schema.
PREDICTION_VALUES = {
    task: Histogram(schema.prediction_metric, f"Predicted {schema.target.description} ({schema.target.unit})",
                    buckets=schema.prediction_buckets)
    for task, schema in SCHEMAS.items() if schema.kind is Kind.REGRESSION
}
PREDICTED_CLASSES = {
    task: Counter(schema.prediction_metric, f"Predicted {schema.target.description}", [schema.target.name])
    for task, schema in SCHEMAS.items() if schema.kind is Kind.CLASSIFICATION
}
# Explanations (POST /<task>/explain): counted apart from predictions, which they must not inflate.
EXPLANATIONS = Counter("explanations", "Records explained, by task and model", ["task", "model"])
EXPLANATIONS_REJECTED = Counter("explanations_rejected", "Explanations answered 429: the worker's explanation "
                                "slots and queue were full", ["task"])
EXPLANATION_SECONDS = Histogram("explanation_compute_seconds", "Time to compute one explanation (model calls "
                                "over every coalition), queueing excluded", ["task"],
                                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5))
VALIDATION_FAILURES = Counter("validation_failures", "Rejected requests by task and schema field (or unknown)",
                              ["task", "field"])
LOG_WRITE_FAILURES = Counter("prediction_log_write_failures", "Requests answered 503 because the log failed")
LOG_REOPENS = Counter("prediction_log_reopens", "Log files found deleted or replaced under the server, reopened",
                      ["file", "reason"])
# 0 while a worker cannot write its log (its /readyz says 503); `livemin`: the worst live worker.
LOG_WRITABLE = Gauge("prediction_log_writable", "1 if the last write to the prediction log succeeded",
                     multiprocess_mode="livemin")
# Threads a native pool would use in the thread that predicts (the event loop's): 1 once the models are loaded.
NATIVE_THREADS = Gauge("prediction_native_threads", "Threads of each native pool (openmp, blas) in the predicting "
                       "thread", ["api"], multiprocess_mode="livemax")
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
BATCH_ROWS = Histogram("prediction_batch_rows", "Rows per model call (micro-batching merges requests)", ["task"],
                       buckets=ROW_BUCKETS)
REQUEST_ROWS = Histogram("prediction_request_rows", "Records per prediction request", ["task"], buckets=ROW_BUCKETS)
# Live drift (bento_service/live_drift.py): PSI of each worker's last window of requests against the
# training reference. `livemax`: the worst live worker; a dead worker's value disappears with it.
FEATURE_DRIFT = Gauge("feature_drift_score", "PSI of a feature over the last requests vs training (>= 0.2: drifted)",
                      ["task", "feature"], multiprocess_mode="livemax")
FEATURE_MISSING = Gauge("feature_missing_share", "Share of the last requests that did not send a feature (drift "
                        "scores judge the values sent)", ["task", "feature"], multiprocess_mode="livemax")
PREDICTION_DRIFT = Gauge("prediction_drift_score", "PSI of the predictions over the last requests vs training",
                         ["task"], multiprocess_mode="livemax")
# Champion and challenger (bento_service/arms.py). Shadow predictions are counted apart from answered ones.
SHADOW_PREDICTIONS = Counter("shadow_predictions", "Records the challenger predicted in shadow mode (logged, not "
                             "answered)", ["task", "model"])
SHADOW_SKIPPED = Counter("shadow_predictions_skipped", "Records not shadowed: the worker's shadow backlog was full "
                         "or the challenger failed", ["task", "reason"])
FEEDBACK = Counter("feedback", "True values received (POST /<task>/feedback), by outcome", ["task", "status"])
# The error of each served model on the last predictions that received their true value, and the same error on its
# held-out test split: the ModelLiveErrorHigh alert compares the two. One quantity and unit per metric name
# (Prometheus naming): RMSE in the unit of a regression task's predictions, the unit that ends its prediction
# metric (a prediction metric ending in _usd gives model_live_rmse_usd), and the share of wrong classes of a
# classification task (model_live_error_ratio). `livemax`: the worst live worker.
def error_quantity(task: str) -> str:
    """The name part of a task's model error: `rmse_<unit>` (regression) or `error_ratio` (classification)."""
    schema = SCHEMAS[task]
    return f"rmse_{schema.prediction_metric.rsplit('_', 1)[-1]}" if schema.kind is Kind.REGRESSION else "error_ratio"


_QUANTITIES = sorted({error_quantity(task) for task in SCHEMAS})
MODEL_LIVE_ERROR = {q: Gauge(f"model_live_{q}", f"{q.replace('_', ' ')} of a model on its last predictions with "
                             "feedback", ["task", "model"], multiprocess_mode="livemax") for q in _QUANTITIES}
MODEL_REFERENCE_ERROR = {q: Gauge(f"model_reference_{q}", f"{q.replace('_', ' ')} of a model on its held-out test "
                                  "split", ["task", "model"], multiprocess_mode="livemax") for q in _QUANTITIES}
# Readiness as /readyz answers it (models loaded, prediction log open), one series per live worker
# (`liveall`: label pid) so a worker stuck loading shows 0 beside ready siblings; 0 from import on.
WORKER_READY = Gauge("prediction_worker_ready", "1 when this worker's models are loaded and its prediction log is open",
                     multiprocess_mode="liveall")


def report_ready(ready: bool) -> bool:
    """Publish this worker's readiness for the not-ready alert, and return it unchanged."""
    WORKER_READY.set(1 if ready else 0)
    return ready


def forget_dead_workers() -> None:
    """Drop the live-mode gauges (drift scores, readiness) of worker processes that no longer exist.

    prometheus_client keeps a process's `live*` gauges until `mark_process_dead(pid)`, which BentoML
    calls only on a clean exit: a killed worker's last values would stay on /metrics for good (a
    stale drift score, a stale "not ready"). Called when a worker starts, which is when the
    supervisor replaces a dead one. Counters are kept: they must not go back when a worker dies.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    for path in Path(directory).glob("gauge_live*_*.db"):
        match = re.search(r"_(\d+)$", path.stem)
        if match is None:
            continue
        pid = int(match[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, someone else's


forget_dead_workers()


def log_reopened(file: str, reason: str) -> None:
    """A log file ("database" or "jsonl") was "deleted" or "replaced" and has been reopened."""
    LOG_REOPENS.labels(file, reason).inc()


def record_predictions(task: str, model: str, predictions: list, arm: str = "champion") -> None:
    """Count a task's answered predictions (as logged: a number, or {<target>: class, "probabilities"}) under the
    arm that answered them."""
    PREDICTIONS.labels(task, model, arm).inc(len(predictions))
    if task in PREDICTION_VALUES:
        histogram = PREDICTION_VALUES[task]
        for value in predictions:
            histogram.observe(value)
    else:
        target = SCHEMAS[task].target.name
        counter = PREDICTED_CLASSES[task]
        for prediction in predictions:
            counter.labels(prediction[target]).inc()
