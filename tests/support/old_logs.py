"""A prediction log as schema version 4 left it (before champion/challenger), on either store, with one row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prediction_log.schema import MIGRATIONS

PLACEHOLDER = {"sqlite": "?", "postgresql": "%s"}


def create_version_4_log(execute: Callable[..., Any], dialect: str) -> None:
    """Versions 1, 2 and 4 applied as an old server did (there is no version 3), and rows logged before arms and
    positions existed: request 'old' (one record, prediction 1.5) and request 'batch', three records of one
    /predict_batch call under one request id (predictions 10.0, 11.0, 12.0, in order)."""
    execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version in (1, 2, 4):
        for statement in MIGRATIONS[version][dialect]:
            execute(statement)
        execute(f"INSERT INTO schema_version (version) VALUES ({PLACEHOLDER[dialect]})", (version,))
    for request_id, prediction in (("old", "1.5"), ("batch", "10.0"), ("batch", "11.0"), ("batch", "12.0")):
        execute("INSERT INTO predictions (ts, request_id, task, model, inputs, prediction, latency_ms) "
                f"VALUES ('2026-01-01T00:00:00+00:00', {PLACEHOLDER[dialect]}, 'housing', 'm', '{{}}', "
                f"{PLACEHOLDER[dialect]}, 1.0)", (request_id, prediction))
