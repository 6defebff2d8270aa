"""Each served model's error on its last predictions whose true values came back (POST /<task>/feedback).

One window per model in this worker, over the last WINDOW feedbacks it received: RMSE for regression (in the
unit of the predictions), the share of wrong classes for classification, each on a gauge of its own
(bento_service/metrics.py: model_live_rmse_usd, model_live_error_ratio) that the ModelLiveErrorHigh alert
(monitoring/prometheus/rules.yml) compares with the model's test-split error (`reference_error`). Only the
models this worker serves get a series, so the label set stays closed even when feedback arrives for an
older model's predictions.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from bento_service import metrics
from domain.schema import SCHEMAS, Kind

WINDOW = 500


def prediction_error(task: str, prediction: Any, actual: Any) -> float:
    """Squared error (regression) or 0/1 wrong class (classification) of one logged prediction."""
    if SCHEMAS[task].kind is Kind.REGRESSION:
        return (float(prediction) - float(actual)) ** 2
    return float(prediction[SCHEMAS[task].target.name] != actual)


def reference_error(task: str, test_scores: dict[str, Any]) -> float | None:
    """The model's test-split value of the live metric, from its packaged scores (None if absent)."""
    if SCHEMAS[task].kind is Kind.REGRESSION:
        return test_scores.get("rmse")
    accuracy = test_scores.get("accuracy")
    return None if accuracy is None else 1.0 - accuracy


class LiveError:
    """The live error gauges of one task's served models."""

    def __init__(self, task: str, models: dict[str, dict[str, Any]], window: int = WINDOW) -> None:
        """`models`: tag -> metadata of every model this worker serves for the task (its "test" scores)."""
        self.task = task
        self.rmse = SCHEMAS[task].kind is Kind.REGRESSION
        quantity = metrics.error_quantity(task)
        self._live = metrics.MODEL_LIVE_ERROR[quantity]
        self._errors = {tag: deque(maxlen=window) for tag in models}
        for tag, metadata in models.items():
            reference = reference_error(task, metadata.get("test") or {})
            if reference is not None:
                metrics.MODEL_REFERENCE_ERROR[quantity].labels(task, tag).set(reference)

    def add(self, model: str, prediction: Any, actual: Any) -> None:
        errors = self._errors.get(model)
        if errors is None:  # a model this worker does not serve (an older deployment's prediction)
            return
        errors.append(prediction_error(self.task, prediction, actual))
        mean = sum(errors) / len(errors)
        self._live.labels(self.task, model).set(math.sqrt(mean) if self.rmse else mean)
