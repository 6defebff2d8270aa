"""Adaptive micro-batching across concurrent requests inside one worker.

Tree ensembles cost about the same for 32 rows as for one, so requests that arrive while a
prediction runs are queued and predicted together in the next call. Before a call the batcher
yields to the event loop until no new caller joins, so requests already being parsed join this
call rather than the next; an idle server adds no delay (two loop iterations).

The batcher hands `predict` the callers' records as they came (dicts of raw fields): building a DataFrame
is the predictor's business, and the compiled one never does (bento_service/predictors.py).

Small batches run on the event loop thread: their predict holds the GIL anyway, so a thread would
only add hand-offs. Large batches (predict_batch) spend their time in native code that releases
the GIL, so they go to a thread and the loop keeps serving. Measurements: bench/NOTES.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

# Yields to the event loop before a model call: stop after QUIET_YIELDS yields in a row with no
# new caller, or after MAX_GATHER_YIELDS in all (a bound on the added delay under a flood).
QUIET_YIELDS = 2
MAX_GATHER_YIELDS = 16
# Batches up to this many rows are predicted on the event loop thread, larger ones in a thread.
INLINE_MAX_ROWS = 64


class MicroBatcher:
    """Collects rows from concurrent callers and runs `predict` on them together.

    `predict(records) -> array` runs on the event loop for small batches and in `executor` (asyncio's
    default if None) for large ones (see the module docstring).
    """

    def __init__(self, predict: Callable[[list[dict[str, Any]]], np.ndarray], max_rows: int = 256,
                 on_call: Callable[[int], None] | None = None, executor: Executor | None = None) -> None:
        self._predict = predict
        self._executor = executor
        self._max_rows = max_rows
        self._on_call = on_call  # told the rows of every model call (the prediction_batch_rows histogram)
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
                await self._gather()
                batch = self._take()
                rows = [row for records, _ in batch for row in records]
                if self._on_call is not None:
                    self._on_call(len(rows))
                try:
                    if len(rows) <= INLINE_MAX_ROWS:
                        predictions = self._predict(rows)
                    else:
                        predictions = await asyncio.get_running_loop().run_in_executor(
                            self._executor, self._predict, rows)
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

    async def _gather(self) -> None:
        """Yield to the event loop until callers stop joining (bounded by MAX_GATHER_YIELDS)."""
        quiet = 0
        for _ in range(MAX_GATHER_YIELDS):
            waiting = len(self._pending)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._pending) == waiting else 0
            if quiet >= QUIET_YIELDS:
                return

    def _take(self) -> list[tuple[list[dict[str, Any]], asyncio.Future]]:
        """Pending callers up to max_rows (a single large caller is never split)."""
        taken, rows = [], 0
        while self._pending and (not taken or rows + len(self._pending[0][0]) <= self._max_rows):
            records, future = self._pending.pop(0)
            taken.append((records, future))
            rows += len(records)
        return taken
