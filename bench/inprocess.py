"""The champion's in-process predict: the ceiling the served numbers are compared with (the model-time floor).

Same rows, same model files, one thread (threadpool_limits(1), as each service worker runs with
OMP_NUM_THREADS=1). Two predictors, each as the service calls it: scikit-learn on a DataFrame built from the
records (today's service and the fallback), and the compiled model on the records (domain/compiled.py, the
repository's models/housing/compiled/model.onnx); the median call time at 1, 16 and 1,000 rows is what a
server could reach at best, before HTTP, validation and the prediction log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from domain.compiled import CompiledModel
from domain.schema import load_schema


class InProcessModel:
    def __init__(self, repo: Path) -> None:
        self.model = joblib.load(repo / "models" / "housing" / "champion.joblib")
        graph = repo / "models" / "housing" / "compiled" / "model.onnx"
        self.compiled = CompiledModel(self.model.steps[0][1], graph.read_bytes()) if graph.is_file() else None

    def predictors(self) -> dict[str, Callable[[list[dict[str, Any]]], np.ndarray]]:
        columns = load_schema("housing").feature_names
        out = {"scikit-learn": lambda rows: self.model.predict(pd.DataFrame.from_records(rows, columns=columns))}
        if self.compiled is not None:
            out["compiled"] = self.compiled.predict_records
        return out

    def rows_per_second(self, rows: list[dict[str, Any]], duration_s: float) -> dict[str, float]:
        """Repeated scikit-learn predict on a DataFrame of `rows` for about duration_s: rows/s and median call."""
        frame = pd.DataFrame.from_records(rows)
        median = _median_call(lambda: self.model.predict(frame), duration_s)
        return {"rows": len(rows), "median_call_ms": 1000 * median, "rows_per_s": len(rows) / median}

    def floor(self, rows: list[dict[str, Any]], sizes: tuple[int, ...], duration_s: float) -> list[dict[str, Any]]:
        """Median call time of each predictor on n rows, for each n in sizes (one thread).

        Successive calls take successive slices of `rows`: the same row over and over would let the CPU's
        branch predictor learn its path through every tree, which made a compiled 1-row call look 2x cheaper
        than a fresh row costs (bench/NOTES.md)."""
        out = []
        for n in sizes:
            batches = [rows[i:i + n] for i in range(0, max(1, len(rows) - n + 1), n)] or [rows[:n]]
            for name, predict in self.predictors().items():
                turn = iter(range(10**9))
                median = _median_call(lambda p=predict, t=turn, b=batches: p(b[next(t) % len(b)]), duration_s)
                out.append({"predictor": name, "rows": n, "median_call_ms": 1000 * median})
        return out


def _median_call(call: Callable[[], Any], duration_s: float) -> float:
    with threadpool_limits(limits=1):
        call()  # warm-up
        calls = []
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline or len(calls) < 3:
            start = time.perf_counter()
            call()
            calls.append(time.perf_counter() - start)
    return float(np.median(calls))
