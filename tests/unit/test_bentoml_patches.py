"""bento_service/bentoml_patches.py against the installed BentoML: each change is in effect, and does only what
it says (the access log loses the given routes, every other route is still logged; a method bound once answers
as BentoML's per-request wrapper does; the cached response headers are BentoML's own)."""

from __future__ import annotations

import asyncio
import logging

import bentoml
import pytest
from _bentoml_impl.server.app import ServiceAppFactory
from bentoml._internal.context import trace_context
from bentoml._internal.server.http import access
from pydantic import Field
from starlette.responses import JSONResponse

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


class _Service:
    """Two API methods as BentoML sees them (APIMethod descriptors), one with a pydantic Field default."""

    @bentoml.api(route="/double")
    def double(self, value: int) -> int:
        return 2 * value

    @bentoml.api(route="/scaled")
    def scaled(self, value: int, factor: int = Field(default=3)) -> int:
        return value * factor


def test_api_methods_bound_once_answer_as_bentoml_binds_them() -> None:
    service = _Service()
    per_request = service.double
    assert service.double is not per_request  # BentoML's descriptor: a new wrapper on every access

    assert bentoml_patches.bind_apis_once(service) == 2
    assert service.double is service.double and service.double.local is service.double.local
    # the Field default is filled in as BentoML's wrapper fills it (a bare call would pass the FieldInfo)
    assert service.scaled.local(5) == _Service.scaled.__get__(_Service(), _Service).local(5) == 15
    assert service.double.local(4) == 8 and service.double(4) == 8


class _Proxy:
    """Stands for the RemoteProxy BentoML's server sets as `__self_proxy__` once the instance exists: its API
    attributes are plain functions (BentoML sets `.local` on them)."""

    def __getattr__(self, name: str):
        def call(value: int) -> str:
            return f"proxied {name} {value}"
        return call


def test_a_bound_method_called_on_the_instance_still_goes_through_bentomls_proxy() -> None:
    service, reference = _Service(), _Service()
    bentoml_patches.bind_apis_once(service)
    service.__self_proxy__ = reference.__self_proxy__ = _Proxy()
    assert service.double(4) == _Service.double.__get__(reference, _Service)(4) == "proxied double 4"
    assert service.double.local(4) == 8


def test_unknown_api_method_code_is_left_alone(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bentoml_patches, "_PER_ACCESS_WRAPPER", ("a line BentoML does not have",))
    service = _Service()
    with caplog.at_level(logging.WARNING, logger="bentoml.prediction_service"):
        assert bentoml_patches.bind_apis_once(service) == 0
    assert service.double is not service.double
    assert "APIMethod.__get__ is not the known" in caplog.text


class _Factory:
    class service:  # noqa: N801 - stands for the Service object, of which the method reads only `name`
        name = "prediction_service"


@pytest.fixture
def restored_response_headers():
    original = ServiceAppFactory._add_response_headers
    yield original
    ServiceAppFactory._add_response_headers = original  # type: ignore[method-assign]
    bentoml_patches._header_settings.cache_clear()


@pytest.mark.parametrize("request_id", [None, 0x1234ABCD])
def test_cached_response_headers_are_bentomls(restored_response_headers, request_id: int | None) -> None:
    original = restored_response_headers
    assert bentoml_patches.cache_response_headers()
    assert ServiceAppFactory._add_response_headers is bentoml_patches._add_response_headers
    trace_context.request_id = request_id
    try:
        expected, patched = JSONResponse({}), JSONResponse({})
        original(_Factory(), expected)
        ServiceAppFactory._add_response_headers(_Factory(), patched)
    finally:
        trace_context.request_id = None
    assert patched.headers.items() == expected.headers.items()
    assert patched.headers["server"] == "BentoML Service/prediction_service"
    assert ("x-bentoml-request-id" in patched.headers) == (request_id is not None)


def test_unknown_response_header_code_is_left_alone(restored_response_headers,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bentoml_patches, "_RESPONSE_HEADERS_SHA256", "0" * 64)
    assert not bentoml_patches.cache_response_headers()
    assert ServiceAppFactory._add_response_headers is restored_response_headers
