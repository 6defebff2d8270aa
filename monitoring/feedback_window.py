"""The window's predictions that received feedback, streamed from the store in chunks, for monitoring/performance.py.

One row per logged prediction with its true value (a shadowed record gives two, the champion's and its shadow row;
of an arm's predictions under one reused request id only the newest, as the service scores it), deduplicated by the
store. The rows come in chunks of CHUNK in log order, so memory does not grow with the window; the pairs of a
shadowed record (champion and shadow row) and the champion's records that have no shadow row are joined by the
store too, for the paired and the unpaired comparison.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from monitoring.logquery import Window

CHUNK = 20_000
COLUMNS = ["ts", "request_id", "position", "model", "arm", "prediction", "actual"]
PAIR_COLUMNS = ["champion", "shadow", "actual"]


def _newest(alias: str) -> str:
    """The row `alias` is the newest of its arm under its request id and position."""
    return (f"NOT EXISTS (SELECT 1 FROM predictions newer WHERE newer.task = {alias}.task AND newer.request_id = "
            f"{alias}.request_id AND newer.position = {alias}.position AND newer.arm = {alias}.arm "
            f"AND newer.id > {alias}.id)")


def _source(window: Window, paired: bool = False) -> tuple[str, tuple]:
    """FROM ... WHERE ... of the window's predictions (p) joined with their feedback (f); `paired`: the champion's
    rows joined with the shadow row (s) of the same record.

    The join starts from the feedback (usually far fewer rows than the predictions, none at all until clients send
    any), read through its (task, ts) index: a true value arrives after its prediction was logged, so feedback
    older than the window cannot belong to it. Each feedback row then finds its predictions by request id. On
    SQLite, CROSS JOIN keeps that order and INDEXED BY the request-id index (left to itself, SQLite scanned the
    window's (task, ts) range once per feedback row: 20,000 predictions took 2 minutes); PostgreSQL's planner
    chooses from its statistics."""
    mark = window.dialect.mark
    sqlite = window.dialect.kind == "sqlite"
    join, by_request = ("CROSS JOIN", " INDEXED BY predictions_request_id") if sqlite else ("JOIN", "")
    shadow = (f"{join} predictions s{by_request} ON s.task = p.task AND s.request_id = p.request_id "
              "AND s.position = p.position AND s.arm = 'shadow' " if paired else "")
    clauses = [f"f.task = {mark}", _newest("p")]
    args: list[Any] = [window.task]
    if window.since:
        clauses += [f"f.ts >= {mark}", f"p.ts >= {mark}"]
        args += [window.since, window.since]
    if paired:
        clauses += ["p.arm = 'champion'", _newest("s")]
    return (f"FROM feedback f {join} predictions p{by_request} ON p.task = f.task AND p.request_id = f.request_id "
            f"AND p.position = f.position {shadow}WHERE {' AND '.join(clauses)}", tuple(args))


def _decoded(rows: list[tuple], columns: list[str], json_columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for column in json_columns:
        frame[column] = [json.loads(v) if isinstance(v, str) else v for v in frame[column]]
    return frame


def _chunks(window: Window, sql: str, args: tuple, columns: list[str],
            json_columns: tuple[str, ...]) -> Iterator[pd.DataFrame]:
    for batch in window.stream(sql, args, CHUNK):
        yield _decoded(batch, columns, json_columns)


def arm_counts(window: Window) -> dict[str, int]:
    """How many predictions with feedback each arm has in the window."""
    if not window.has_arms:  # a log from before feedback existed
        return {}
    source, args = _source(window)
    return {arm: int(n) for arm, n in window.rows(f"SELECT p.arm, COUNT(*) {source} GROUP BY p.arm", args)}


def rows(window: Window) -> Iterator[pd.DataFrame]:
    """The window's predictions with feedback, in log order, in chunks (COLUMNS; prediction and actual decoded)."""
    if not window.has_arms:
        return
    source, args = _source(window)
    yield from _chunks(window, f"SELECT p.ts, p.request_id, p.position, p.model, p.arm, p.prediction, f.actual "
                               f"{source} ORDER BY p.id", args, COLUMNS, ("prediction", "actual"))


def pairs(window: Window) -> Iterator[pd.DataFrame]:
    """Each shadowed record with feedback: the champion's prediction, the shadow's, the true value (PAIR_COLUMNS)."""
    if not window.has_arms:
        return
    source, args = _source(window, paired=True)
    yield from _chunks(window, f"SELECT p.prediction, s.prediction, f.actual {source} ORDER BY p.id", args,
                       PAIR_COLUMNS, tuple(PAIR_COLUMNS))


def unshadowed(window: Window) -> Iterator[pd.DataFrame]:
    """The champion's predictions with feedback whose record has no shadow row (COLUMNS)."""
    if not window.has_arms:
        return
    source, args = _source(window)
    yield from _chunks(window, f"SELECT p.ts, p.request_id, p.position, p.model, p.arm, p.prediction, f.actual "
                               f"{source} AND p.arm = 'champion' AND NOT EXISTS (SELECT 1 FROM predictions s WHERE "
                               "s.task = p.task AND s.request_id = p.request_id AND s.position = p.position AND "
                               "s.arm = 'shadow') ORDER BY p.id", args, COLUMNS, ("prediction", "actual"))
