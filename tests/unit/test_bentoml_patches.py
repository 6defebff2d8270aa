"""bento_service/bentoml_patches.py against the installed BentoML: each change is in effect, and does only what
it says (the access log loses the given routes; every other route is still logged)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from bentoml._internal.server.http import access

from bento_service import bentoml_patches


async def _ok(scope: dict, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _request(middleware, path: str) -> None:
    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    scope = {"type": "http", "scheme": "http", "method": "POST", "path": path, "headers": [],
             "client": ("127.0.0.1", 5000)}
    asyncio.run(middleware(scope, receive, send))


@pytest.fixture
def restored_access_log():
    original, paths = access.AccessLogMiddleware, bentoml_patches._AccessLogSkipping.extra_skip_paths
    yield
    access.AccessLogMiddleware, bentoml_patches._AccessLogSkipping.extra_skip_paths = original, paths


def test_skipped_routes_leave_the_access_log_and_the_others_stay(restored_access_log,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    assert bentoml_patches.skip_access_log(["/housing/predict", "/iris/predict"])
    # built as BentoML builds it: the class looked up at build time, BentoML's own skip paths passed in
    middleware = access.AccessLogMiddleware(_ok, skip_paths=["/livez"])
    with caplog.at_level(logging.INFO, logger="bentoml.access"):
        for path in ("/housing/predict", "/housing/predict_batch", "/iris/predict", "/livez", "/model",
                     "/housing/explain"):
            _request(middleware, path)
    logged = [record.getMessage() for record in caplog.records if record.name == "bentoml.access"]
    assert [m for m in logged if "path=/model" in m] and [m for m in logged if "path=/housing/explain" in m]
    assert not [m for m in logged if "predict" in m or "livez" in m], logged


def test_the_timeout_fix_is_installed() -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    assert bentoml_patches.apply()
    assert TimeoutMiddleware.__call__ is bentoml_patches._timeout_call
