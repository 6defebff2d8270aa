"""Shadow mode's queue: the challenger predicts answered requests off their path, in few large calls.

A request the champion answered hands its records here (`submit`, on the event loop: no task and no future per
request, which is most of what shadowing would otherwise cost). The first record to wait starts a timer of
`linger_s`; when it fires, one call predicts every record that waited (on the event loop when small, else in the
executor: the micro-batcher's rule, bento_service/batching.py), and their rows go to the log with the next group
of answered rows (`PredictionLog.write_later`: no commit of their own). At most `max_backlog` records wait; a
request beyond that is not shadowed, and counted. A failure of the challenger or of the log is counted and logged;
no client ever sees it. Measured: bench/shadow.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, NamedTuple

import numpy as np

from bento_service import metrics
from bento_service.batching import INLINE_MAX_ROWS
from prediction_log.store import PredictionRow

logger = logging.getLogger(__name__)

# Shadow mode: the challenger's queue waits this long for more requests before a call (fewer, larger calls:
# its CPU per request is what shadowing costs; at 8 connections 10 ms cost 1.44x the CPU per request of `off`,
# 50 ms 1.11x: bench/shadow.py), and at most this many records wait for it; beyond that, records are not
# shadowed (counted in shadow_predictions_skipped) rather than queued without bound.
SHADOW_LINGER_S = 0.05
MAX_SHADOW_BACKLOG = 1024


class _Waiting(NamedTuple):
    rows: list[dict[str, Any]]
    request_id: str
    received: str
    started: float  # perf_counter when the request arrived: the logged latency runs to the shadow prediction
    log: Any  # the worker's PredictionLog


class ShadowQueue:
    """The records one task's shadowing challenger still has to predict, in this worker."""

    def __init__(self, task: str, tag: str, predict: Callable[[list[dict[str, Any]]], np.ndarray],
                 logged_value: Callable[[Any], Any], linger_s: float, max_backlog: int,
                 executor: Executor | None = None, on_call: Callable[[int], None] | None = None) -> None:
        self.task, self.tag = task, tag
        self._predict, self._logged_value = predict, logged_value
        self._linger_s, self._max_backlog = linger_s, max_backlog
        self._executor, self._on_call = executor, on_call
        self._waiting: list[_Waiting] = []
        self._backlog = 0  # records waiting or being predicted
        self._drain_task: asyncio.Task | None = None

    def submit(self, rows: list[dict[str, Any]], request_id: str, received: str, started: float, log: Any) -> None:
        """Queue an answered request's records (on the event loop); skipped and counted if the backlog is full."""
        if self._backlog + len(rows) > self._max_backlog:
            metrics.SHADOW_SKIPPED.labels(self.task, "backlog").inc(len(rows))
            return
        self._backlog += len(rows)
        self._waiting.append(_Waiting(rows, request_id, received, started, log))
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(self._linger_s)
                batch, self._waiting = self._waiting, []
                try:
                    await self._shadow(batch)
                finally:
                    self._backlog -= sum(len(waiting.rows) for waiting in batch)
        finally:
            self._drain_task = None

    async def _shadow(self, batch: list[_Waiting]) -> None:
        records = [row for waiting in batch for row in waiting.rows]
        try:
            if self._on_call is not None:
                self._on_call(len(records))
            if len(records) <= INLINE_MAX_ROWS:
                values = self._predict(records)
            else:
                values = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, records)
        except Exception as exc:  # the challenger failed: the champion's answers stand
            self._failed(len(records), exc)
            return
        now, start = time.perf_counter(), 0
        for waiting in batch:  # one write per request: a failure callback counts exactly that request's rows
            latency_ms = 1000 * (now - waiting.started)
            logged = [PredictionRow(waiting.request_id, self.task, self.tag, row, self._logged_value(value),
                                    latency_ms, waiting.received, arm="shadow", position=position)
                      for position, (row, value) in enumerate(zip(waiting.rows, values[start:start + len(waiting.rows)],
                                                                  strict=True))]
            start += len(waiting.rows)
            try:
                waiting.log.write_later(logged, self._failure_of(len(logged)))
            except Exception as exc:  # the log is closed
                self._failed(len(logged), exc)
        metrics.SHADOW_PREDICTIONS.labels(self.task, self.tag).inc(len(records))

    def _failure_of(self, records: int) -> Callable[[BaseException], None]:
        return lambda exc: self._failed(records, exc)

    def _failed(self, records: int, exc: BaseException) -> None:
        """On the event loop, or from the log's writer thread (write_later's failure callback)."""
        metrics.SHADOW_SKIPPED.labels(self.task, "failed").inc(records)
        logger.warning("shadow predictions of %d %s records by %s failed: %s: %s", records, self.task, self.tag,
                       type(exc).__name__, exc)
