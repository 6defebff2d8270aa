"""The champion's in-process predict throughput: the ceiling /housing/predict_batch is compared with.

Same rows, same model file, one thread (threadpool_limits(1), as each service worker runs with
OMP_NUM_THREADS=1), a pandas DataFrame input as the service builds it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits


class InProcessModel:
    def __init__(self, repo: Path) -> None:
        self.model = joblib.load(repo / "models" / "housing" / "champion.joblib")

    def rows_per_second(self, rows: list[dict[str, Any]], duration_s: float) -> dict[str, float]:
        """Repeated predict on a DataFrame of `rows` for about duration_s: rows/s and median call time."""
        frame = pd.DataFrame.from_records(rows)
        with threadpool_limits(limits=1):
            self.model.predict(frame)  # warm-up
            calls = []
            deadline = time.perf_counter() + duration_s
            while time.perf_counter() < deadline or len(calls) < 3:
                start = time.perf_counter()
                self.model.predict(frame)
                calls.append(time.perf_counter() - start)
        median = float(np.median(calls))
        return {"rows": len(rows), "calls": len(calls), "median_call_ms": 1000 * median,
                "rows_per_s": len(rows) / median}
