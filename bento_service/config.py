"""Serving settings, read from the environment (the container is configured by env vars)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bento_service.arms import Routing, routing_from_env
from domain.schema import TASKS
from prediction_log.location import LocationError, LogLocation, resolve


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"environment variable {name} must be an integer, got {value!r}") from None


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"environment variable {name} must be a number, got {value!r}") from None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _log_location() -> LogLocation:
    try:
        return resolve()
    except LocationError as exc:
        raise SystemExit(f"PREDICTION_LOG_URL: {exc}") from None


@dataclass(frozen=True)
class Settings:
    api_key: str | None
    log: LogLocation  # PREDICTION_LOG_URL, else PREDICTION_LOG_DIR, else the default (prediction_log/location.py)
    log_retention_days: float  # rows older than this are deleted (0: kept for ever)
    jsonl_max_bytes: int  # the SQLite store's JSON-lines mirror is rotated past this size
    jsonl_backups: int
    max_batch_records: int
    max_body_bytes: int
    max_header_bytes: int  # request line + headers (bento_service/http_limits.py)
    header_timeout_s: int  # from a connection's start or a request's first byte to the end of its headers
    keep_alive_timeout_s: int  # an idle keep-alive connection is closed after this
    workers: int
    trace_predictions: bool
    access_log_predictions: bool  # prediction routes in BentoML's access log too (they are in the prediction log)
    explain_concurrency: int  # explanations computed at once per worker (bento_service/explainer.py)
    explain_queue: int  # explanations waiting per worker beyond those; more get 429
    routing: dict[str, Routing]  # per task: <TASK>_CHALLENGER = off | shadow | ab:<share> (bento_service/arms.py)
    ab_seed: int  # the A/B draw of requests without X-Client-Key
    max_feedback_items: int  # items of one POST /<task>/feedback_batch
    feedback_queue: int  # feedback items waiting for the store per worker; beyond it a call is answered 503

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            api_key=os.environ.get("API_KEY") or None,
            log=_log_location(),
            log_retention_days=_float("PREDICTION_LOG_RETENTION_DAYS", 0),
            jsonl_max_bytes=_int("PREDICTION_LOG_JSONL_MAX_BYTES", 256 << 20),
            jsonl_backups=_int("PREDICTION_LOG_JSONL_BACKUPS", 3),
            max_batch_records=_int("MAX_BATCH_RECORDS", 1000),
            max_body_bytes=_int("MAX_BODY_BYTES", 1 << 20),
            max_header_bytes=_int("MAX_HEADER_BYTES", 16 << 10),
            header_timeout_s=_int("HEADER_TIMEOUT_S", 10),
            keep_alive_timeout_s=_int("KEEPALIVE_TIMEOUT_S", 5),
            workers=_int("WORKERS", 1),
            trace_predictions=_flag("TRACE_PREDICTIONS"),
            access_log_predictions=_flag("ACCESS_LOG_PREDICTIONS"),
            explain_concurrency=max(1, _int("EXPLAIN_CONCURRENCY", 1)),
            explain_queue=max(0, _int("EXPLAIN_QUEUE", 4)),
            routing={task: routing_from_env(task) for task in TASKS},
            ab_seed=_int("AB_SEED", 0),
            max_feedback_items=_int("MAX_FEEDBACK_ITEMS", 1000),
            feedback_queue=max(1, _int("FEEDBACK_QUEUE", 10_000)),
        )


SETTINGS = Settings.from_env()
