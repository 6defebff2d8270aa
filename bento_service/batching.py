"""Adaptive micro-batching across concurrent requests inside one worker.

Tree ensembles cost about the same for 32 rows as for one, so while a prediction runs, the
requests that arrive meanwhile are queued and predicted together in the next call. An idle
server adds no delay: a lone request is predicted at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd


class MicroBatcher:
    """Collects rows from concurrent callers and runs `predict` on them together.

    `predict(frame) -> array` runs in a worker thread so the event loop keeps accepting
    requests (and building the next batch) while the model computes.
    """

    def __init__(self, predict: Callable[[pd.DataFrame], np.ndarray], columns: Sequence[str],
                 max_rows: int = 256) -> None:
        self._predict = predict
        self._columns = list(columns)
        self._max_rows = max_rows
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def predict(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Predictions for `records`, in order (possibly computed together with other callers')."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self._pending.append((records, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take()
                rows = [row for records, _ in batch for row in records]
                try:
                    frame = pd.DataFrame.from_records(rows, columns=self._columns)
                    predictions = await asyncio.to_thread(self._predict, frame)
                except Exception as exc:  # deliver the failure to every waiting caller
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for records, future in batch:
                    if not future.done():
                        future.set_result(predictions[start:start + len(records)])
                    start += len(records)

    def _take(self) -> list[tuple[list[dict[str, Any]], asyncio.Future]]:
        """Pending callers up to max_rows (a single large caller is never split)."""
        taken, rows = [], 0
        while self._pending and (not taken or rows + len(self._pending[0][0]) <= self._max_rows):
            records, future = self._pending.pop(0)
            taken.append((records, future))
            rows += len(records)
        return taken
