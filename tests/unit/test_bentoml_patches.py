"""bento_service/bentoml_patches.py against the installed BentoML: each change is in effect, and does only what
it says (the access log loses the given routes, every other route is still logged; a cached API wrapper answers
as BentoML's per-request one does; the cached response headers are BentoML's own)."""

from __future__ import annotations

import asyncio
import inspect
import logging

import bentoml
import pytest
from _bentoml_impl.server.app import ServiceAppFactory
from _bentoml_sdk.method import APIMethod
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.context import trace_context
from bentoml._internal.server.http import access
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from bentoml._internal.utils import get_original_func
from opentelemetry.sdk.trace import TracerProvider
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
def restored_access_log(monkeypatch: pytest.MonkeyPatch):
    """BentoML's own access-log class for the test (the service's import may have replaced it), then back."""
    monkeypatch.setattr(access, "AccessLogMiddleware", bentoml_patches._upstream_access_log)
    monkeypatch.setattr(bentoml_patches._AccessLogSkipping, "extra_skip_paths", ())


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
    assert bentoml_patches.apply()
    assert TimeoutMiddleware.__call__ is bentoml_patches._timeout_call


class _Service:
    """API methods as BentoML sees them (APIMethod descriptors): one with a pydantic Field default, one async."""

    @bentoml.api(route="/double")
    def double(self, value: int) -> int:
        return 2 * value

    @bentoml.api(route="/scaled")
    def scaled(self, value: int, factor: int = Field(default=3)) -> int:
        return value * factor

    @bentoml.api(route="/later")
    async def later(self, value: int) -> int:
        return value + 1


class _Proxy:
    """Stands for the RemoteProxy BentoML's server sets as `__self_proxy__` once the instance exists: its API
    attributes are plain functions (BentoML sets `.local` on them)."""

    def __getattr__(self, name: str):
        def call(value: int) -> str:
            return f"proxied {name} {value}"
        return call


@pytest.fixture
def restored_local_call(monkeypatch: pytest.MonkeyPatch):
    """BentoML's own `_local_call` for the test (the service's import may have replaced it), then back."""
    monkeypatch.setattr(APIMethod, "_local_call", bentoml_patches._upstream_local_call)
    return bentoml_patches._upstream_local_call


def test_cached_local_calls_answer_as_bentomls_own(restored_local_call) -> None:
    service = _Service()
    assert service.double.local is not service.double.local  # BentoML: a new wrapper on every access

    assert bentoml_patches.cache_local_calls()
    assert service.double.local is service.double.local
    assert service.double.local is not _Service().double.local  # one per instance
    assert service.double.local(4) == service.double(4) == 8
    # the Field default is filled in as BentoML's wrapper fills it (a bare call would pass the FieldInfo)
    assert service.scaled.local(5) == 15
    assert inspect.iscoroutinefunction(get_original_func(service.later.local))
    assert asyncio.run(service.later.local(1)) == 2
    assert inspect.signature(service.scaled.local) == inspect.signature(restored_local_call(_Service.scaled,
                                                                                            service))


def test_once_the_server_sets_a_proxy_calls_still_go_through_it(restored_local_call) -> None:
    assert bentoml_patches.cache_local_calls()
    service = _Service()
    service.__self_proxy__ = _Proxy()
    assert service.double(4) == "proxied double 4"
    assert service.double.local is service.double.local and service.double.local(4) == 8


class _Factory:
    class service:  # noqa: N801 - stands for the Service object, of which the method reads only `name`
        name = "prediction_service"


@pytest.fixture
def restored_response_headers(monkeypatch: pytest.MonkeyPatch):
    """BentoML's own `_add_response_headers` for the test, then back."""
    monkeypatch.setattr(ServiceAppFactory, "_add_response_headers", bentoml_patches._upstream_response_headers)
    yield bentoml_patches._upstream_response_headers
    bentoml_patches._header_settings.cache_clear()


@pytest.fixture
def trace_id_setting():
    setting = BentoMLContainer.http.response.trace_id
    before = setting.get()
    yield setting
    setting.set(before)
    bentoml_patches._header_settings.cache_clear()


@pytest.mark.parametrize("send_trace_id", [False, True])
@pytest.mark.parametrize("request_id", [None, 0x1234ABCD])
def test_cached_response_headers_are_bentomls(restored_response_headers, trace_id_setting, request_id: int | None,
                                              send_trace_id: bool) -> None:
    original = restored_response_headers
    trace_id_setting.set(send_trace_id)
    bentoml_patches._header_settings.cache_clear()
    assert bentoml_patches.cache_response_headers()
    assert ServiceAppFactory._add_response_headers is bentoml_patches._add_response_headers
    trace_context.request_id = request_id
    try:
        with TracerProvider().get_tracer("test").start_as_current_span("request"):
            expected, patched = JSONResponse({}), JSONResponse({})
            original(_Factory(), expected)
            ServiceAppFactory._add_response_headers(_Factory(), patched)
    finally:
        trace_context.request_id = None
    assert patched.headers.items() == expected.headers.items()
    assert patched.headers["server"] == "BentoML Service/prediction_service"
    assert ("x-bentoml-request-id" in patched.headers) == (request_id is not None)
    assert ("x-bentoml-trace-id" in patched.headers) == send_trace_id


PATCHES = [  # (owner, attribute, the module's copy of BentoML's own, install function, its known hash, arguments)
    (TimeoutMiddleware, "__call__", "_upstream_timeout_call", "apply", "_TIMEOUT_SHA256", ()),
    (access, "AccessLogMiddleware", "_upstream_access_log", "skip_access_log", "_ACCESS_LOG_SHA256",
     (["/housing/predict"],)),
    (APIMethod, "_local_call", "_upstream_local_call", "cache_local_calls", "_LOCAL_CALL_SHA256", ()),
    (ServiceAppFactory, "_add_response_headers", "_upstream_response_headers", "cache_response_headers",
     "_RESPONSE_HEADERS_SHA256", ()),
]
PATCH_IDS = ["timeout", "access log", "local calls", "response headers"]


@pytest.mark.parametrize(("owner", "name", "upstream", "install", "known_sha256", "args"), PATCHES, ids=PATCH_IDS)
def test_unknown_upstream_code_is_left_alone(owner, name: str, upstream: str, install: str, known_sha256: str,
                                             args: tuple, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """An upgraded BentoML (here: a known hash that no longer matches) keeps its own code, and the log says so."""
    shipped = getattr(bentoml_patches, upstream)
    monkeypatch.setattr(owner, name, shipped)  # as BentoML ships it (the service's import may have replaced it)
    monkeypatch.setattr(bentoml_patches, known_sha256, "0" * 64)
    with caplog.at_level(logging.WARNING, logger="bentoml.prediction_service"):
        assert not getattr(bentoml_patches, install)(*args)
    assert getattr(owner, name) is shipped
    assert f"{owner.__name__}.{name} is not the known 1.4.40 code" in caplog.text


@pytest.mark.parametrize(("owner", "name", "upstream", "install", "known_sha256", "args"), PATCHES, ids=PATCH_IDS)
def test_another_patch_in_place_is_left_alone(owner, name: str, upstream: str, install: str, known_sha256: str,
                                              args: tuple, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """Code someone else put there after this module was imported is not overwritten, though BentoML's own
    source still has the known hash."""
    foreign = type("Foreign", (), {}) if isinstance(getattr(bentoml_patches, upstream), type) else (lambda *a: None)
    monkeypatch.setattr(owner, name, foreign)
    with caplog.at_level(logging.WARNING, logger="bentoml.prediction_service"):
        assert not getattr(bentoml_patches, install)(*args)
    assert getattr(owner, name) is foreign
    assert f"{owner.__name__}.{name} was replaced by other code" in caplog.text
