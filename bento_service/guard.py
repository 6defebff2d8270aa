"""ASGI middleware in front of the prediction routes: auth, content type, size, key count, validation.

BentoML would accept any content type as JSON and logs a traceback for every invalid body;
this guard answers bad requests itself, before BentoML sees them, with a 4xx whose message
names the field, counts the failure by field on /metrics and logs it in the prediction log,
all of it bounded whatever the client sends (bento_service/rejections.py).
Valid requests go on to BentoML with a request id (header X-Request-ID, also echoed back).
Health, metrics and docs routes pass straight through.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from typing import Any

from pydantic import BaseModel, ValidationError

from bento_service import metrics
from bento_service.config import settings
from bento_service.rejections import TooManyKeys, check_key_count, describe, metric_field
from bento_service.schemas import REQUEST_ID_PATTERN
from prediction_log.store import ErrorRow
from prediction_log.writer import LogUnavailable, process_log

SAFE_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class RequestTooLarge(Exception):
    pass


class RequestGuard:
    """`routes`: route -> (task, request model) of every route it checks; other routes pass through."""

    def __init__(self, app: Any, routes: dict[str, tuple[str, type[BaseModel]]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.routes or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        task, model = self.routes[scope["path"]]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        if not SAFE_REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex

        async def reject(status: int, error: str, detail: list[dict[str, str]] | None = None,
                         errors: int = 0) -> None:
            for label in {metric_field(task, item["field"]) for item in detail or [{"field": "body"}]}:
                metrics.VALIDATION_FAILURES.labels(task, label).inc()
            body: dict[str, Any] = {"error": error, "request_id": request_id}
            if detail:
                body["detail"] = detail
                body["errors"] = errors
            await _log_error(request_id, task, status, body, started)
            await _send_json(send, status, body, request_id)

        if settings().api_key is not None:
            supplied = headers.get("x-api-key", "")
            if not hmac.compare_digest(supplied.encode(), settings().api_key.encode()):
                await _send_json(send, 401, {"error": "missing or invalid X-API-Key header",
                                             "request_id": request_id}, request_id)
                return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            await reject(415, f"Content-Type must be application/json, got {media_type or 'none'!r}")
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings().max_body_bytes:
            await reject(413, f"request body of {declared} bytes exceeds the limit of {settings().max_body_bytes}")
            return
        try:
            body = await _read_body(receive, settings().max_body_bytes)
        except RequestTooLarge:
            await reject(413, f"request body exceeds the limit of {settings().max_body_bytes} bytes")
            return
        try:
            check_key_count(body)
            model.model_validate_json(body)
        except TooManyKeys as error:
            await reject(400, f"invalid request: body: {error}", [{"field": "body", "message": str(error)}], 1)
            return
        except ValidationError as error:
            detail, errors = describe(error)
            shown = "; ".join(d["field"] + ": " + d["message"] for d in detail[:5])
            more = f" (and {errors - 5} more)" if errors > 5 else ""
            await reject(400, f"invalid request: {shown}{more}", detail, errors)
            return

        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"x-request-id"]
        scope["headers"].append((b"x-request-id", request_id.encode()))
        scope.setdefault("state", {})["received_at"] = started
        await self.app(scope, _replay(body), _with_request_id(send, request_id))


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


def _with_request_id(send: Any, request_id: str) -> Any:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
        await send(message)
    return wrapped


async def _send_json(send: Any, status: int, body: dict, request_id: str) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": payload})


async def _log_error(request_id: str, task: str, status: int, body: dict, started: float) -> None:
    """Record a rejected request for error-rate monitoring; a log failure never changes the answer."""
    log = process_log()
    if log is None:
        return
    try:
        await log.write([ErrorRow(request_id, task, status, body, 1000 * (time.perf_counter() - started))])
    except LogUnavailable:
        metrics.LOG_WRITE_FAILURES.inc()
