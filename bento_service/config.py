"""Serving settings, read from the environment (the container is configured by env vars)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prediction_log.store import default_log_dir


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"environment variable {name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class Settings:
    api_key: str | None
    log_dir: Path
    max_batch_records: int
    max_body_bytes: int
    workers: int
    trace_predictions: bool

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            api_key=os.environ.get("API_KEY") or None,
            log_dir=default_log_dir(),
            max_batch_records=_int("MAX_BATCH_RECORDS", 1000),
            max_body_bytes=_int("MAX_BODY_BYTES", 1 << 20),
            workers=_int("WORKERS", 1),
            trace_predictions=os.environ.get("TRACE_PREDICTIONS", "").lower() in ("1", "true", "yes"),
        )


SETTINGS = Settings.from_env()
