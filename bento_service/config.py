"""Serving settings: one object read from the environment when the service starts (the container is configured
by environment variables; docs/configuration in the README lists them).

`settings()` reads them once per process; a bad value stops the server with one line naming the variable,
its value and what is allowed, never a traceback.
"""

from __future__ import annotations

from functools import cache, cached_property

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bento_service.arms import Routing, routing_from_env
from prediction_log.location import LocationError, LogLocation, resolve


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Every serving knob, under the environment variable that sets it (an empty variable keeps the default)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, case_sensitive=True)

    api_key: str | None = Field(None, validation_alias=_env("API_KEY"))
    log_retention_days: float = Field(0, ge=0, validation_alias=_env("PREDICTION_LOG_RETENTION_DAYS"))
    jsonl_max_bytes: int = Field(256 << 20, ge=0, validation_alias=_env("PREDICTION_LOG_JSONL_MAX_BYTES"))
    jsonl_backups: int = Field(3, ge=0, validation_alias=_env("PREDICTION_LOG_JSONL_BACKUPS"))
    max_batch_records: int = Field(1000, ge=1, validation_alias=_env("MAX_BATCH_RECORDS"))
    max_body_bytes: int = Field(1 << 20, ge=1, validation_alias=_env("MAX_BODY_BYTES"))
    max_header_bytes: int = Field(16 << 10, ge=1, validation_alias=_env("MAX_HEADER_BYTES"))
    header_timeout_s: int = Field(10, ge=1, validation_alias=_env("HEADER_TIMEOUT_S"))
    keep_alive_timeout_s: int = Field(5, ge=1, validation_alias=_env("KEEPALIVE_TIMEOUT_S"))
    workers: int = Field(1, ge=1, validation_alias=_env("WORKERS"))
    # prediction routes in BentoML's tracing and access log too (they are in the prediction log already)
    trace_predictions: bool = Field(False, validation_alias=_env("TRACE_PREDICTIONS"))
    access_log_predictions: bool = Field(False, validation_alias=_env("ACCESS_LOG_PREDICTIONS"))
    # explanations computed at once per worker, and waiting beyond those (more get 429)
    explain_concurrency: int = Field(1, ge=1, validation_alias=_env("EXPLAIN_CONCURRENCY"))
    explain_queue: int = Field(4, ge=0, validation_alias=_env("EXPLAIN_QUEUE"))
    ab_seed: int = Field(0, validation_alias=_env("AB_SEED"))  # the A/B draw of requests without X-Client-Key
    max_feedback_items: int = Field(1000, ge=1, validation_alias=_env("MAX_FEEDBACK_ITEMS"))
    # feedback items waiting for the store per worker; beyond it a call is answered 503
    feedback_queue: int = Field(10_000, ge=1, validation_alias=_env("FEEDBACK_QUEUE"))

    @cached_property
    def log(self) -> LogLocation:
        """PREDICTION_LOG_URL, else PREDICTION_LOG_DIR, else the default (prediction_log/location.py)."""
        try:
            return resolve()
        except LocationError as exc:
            raise SystemExit(f"PREDICTION_LOG_URL: {exc}") from None

    def routing(self, task: str) -> Routing:
        """<TASK>_CHALLENGER: off | shadow | ab:<share> (bento_service/arms.py)."""
        return routing_from_env(task)


@cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        variable = str(error["loc"][0]) if error["loc"] else "environment"
        raise SystemExit(f"environment variable {variable}={error.get('input')!r}: {error['msg']}") from None
