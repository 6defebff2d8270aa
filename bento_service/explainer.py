"""Explanations in a worker: Shapley values over the raw fields, with bounded concurrency.

The numbers come from domain/explain.py's `shapley_explainer` against the background sample the pipeline made
and `package` attached to the model as "explain_background": exact values up to `max_exact_fields` fields, a
seeded permutation estimate above, with the settings stage `explain` packaged beside the background, so the
service and the stage's global importance are the same numbers (the tests check exact values against shap's
exact explainer). All coalition rows of one explanation (2**fields x background rows when exact) go through the
served predictor (the compiled graph when the model has one) in one call.

Why a pool of its own: one explanation of a 9-field task with 4 background rows is 2,048 rows through the model,
many predictions' worth of CPU. Explanations therefore run in `EXPLAIN_CONCURRENCY` threads (default 1) per worker,
never on the event loop that predicts, at a lower CPU priority (nice +10: under contention the kernel gives the
cores to the predicting thread first), with at most `EXPLAIN_QUEUE` more waiting; beyond that the answer is 429 at
once. Predictions keep their latency while explanations are requested as fast as clients can
(bench/explain.py measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bento_service.native_threads import limit_native_threads
from bento_service.predictors import Predictor
from domain.explain import Explanation, encode, shapley_explainer
from domain.schema import SCHEMAS, Kind

logger = logging.getLogger("bentoml.prediction_service")
NICE = 10  # explanation threads yield the CPU to the threads that predict


class ExplainerBusy(RuntimeError):
    """Every explanation slot of this worker is taken and its queue is full: answer 429."""


def _explanation_thread() -> None:
    limit_native_threads()
    with contextlib.suppress(OSError):  # Linux: a thread's nice value is its own (a no-op elsewhere)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class ServedExplainer:
    """One task's explainer in this worker: `await explain(record)`, raising ExplainerBusy when full.

    `settings`: the explainer settings packaged with the background (its "explainer" key: max_exact_fields,
    samples, seed); None for the defaults of domain.explain.ShapleySettings."""

    def __init__(self, task: str, background: list[dict[str, Any]], predictor: Predictor, classes: list[str],
                 concurrency: int, queue: int, *, settings: Mapping[str, Any] | None = None) -> None:
        self.task = task
        self.classes = classes  # a classifier's labels in the order of its probabilities
        self.schema = SCHEMAS[task]
        self.shapley = shapley_explainer(self.schema, encode(self.schema, background), settings)
        self.predictor = predictor
        self.limit = concurrency + queue
        self.in_flight = 0
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"explain-{task}",
                                            initializer=_explanation_thread)

    @property
    def background_rows(self) -> int:
        return len(self.shapley.background)

    def describe(self) -> dict[str, Any]:
        """For GET /model: how explanations are computed and what one costs."""
        return {"method": self.shapley.method, "background_rows": self.background_rows,
                "rows_per_explanation": self.shapley.rows_per_explanation}

    def explain_now(self, record: dict[str, Any]) -> Explanation:
        """One explanation in the calling thread (the pool's, the benchmark's)."""
        return self.shapley.explain(encode(self.schema, [record])[0], self.predictor.predict_fields)

    async def explain(self, record: dict[str, Any]) -> Explanation:
        if self.in_flight >= self.limit:  # counted on the event loop: no lock needed
            raise ExplainerBusy(f"{self.in_flight} {self.task} explanations in progress or waiting in this worker")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.explain_now, record)
        finally:
            self.in_flight -= 1

    def answer(self, explanation: Explanation) -> dict[str, Any]:
        """The explanation as answered and logged: dollars per raw field (regression), or per class the
        probability, its base value and each raw field's contribution to it (classification)."""
        fields = self.schema.feature_names
        if self.schema.kind is Kind.REGRESSION:
            return {"prediction": float(explanation.prediction), "base_value": float(explanation.base_value),
                    "contributions": dict(zip(fields, map(float, explanation.contributions), strict=True))}
        classes = self.classes
        contributions = np.asarray(explanation.contributions)
        return {
            "prediction": dict(zip(classes, map(float, explanation.prediction), strict=True)),
            "base_value": dict(zip(classes, map(float, explanation.base_value), strict=True)),
            "contributions": {c: dict(zip(fields, map(float, contributions[:, k]), strict=True))
                              for k, c in enumerate(classes)},
        }

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
