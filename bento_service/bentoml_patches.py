"""Four changes to BentoML 1.4.40 internals: a fix for long pauses under load, quiet prediction routes, and two
per-request costs paid once per worker instead.

BentoML's TimeoutMiddleware (`traffic.timeout`) schedules `loop.call_later(timeout, ...)` for
every request and never cancels it, so each request's objects stay alive for the whole timeout
(60 s here) and every full garbage collection walks them: long pauses under load (bench/NOTES.md).
The replacement below is the same code plus `timer.cancel()` when the request ends, so the
504-on-timeout behaviour is unchanged.

BentoML's access log has one `skip_paths` setting for itself and its request metrics together, so skipping a
route there would also hide it from `bentoml_service_request_*` on /metrics (the alerts and the dashboard read
them). `skip_access_log` leaves routes out of the access log only, by the same check: the class BentoML builds
it from is replaced by a subclass that adds the routes to `skip_paths`.

BentoML finds a request's handler with `getattr(service_instance, name).local`, and its `APIMethod.__get__`
builds the in-process wrapper afresh each time (`_local_call`, which calls `inspect.signature`): 6 % of a
worker's CPU at 32 connections (bench/NOTES.md). That wrapper depends only on the method and the instance, so
`cache_local_calls` keeps the first one per (method, instance) in the instance's `__dict__`; `__get__` itself is
unchanged (so is what it returns once the server has set the instance's proxy).

Every response passes `ServiceAppFactory._add_response_headers`, whose `@inject` binds its signature and looks
up its configuration per call: 7 % of a worker's CPU at 32 connections. `cache_response_headers` puts the same
code in its place with the logging format and the trace-id flag read at the first response (both are set when
the server loads its configuration, before it answers).

Each change is applied only if the upstream code it relies on is byte for byte the known 1.4.40 source (its
sha256, `_replace_if_known`) and nothing else has replaced it since this module was imported; otherwise (an
upgraded BentoML, another patch) the attribute is left alone and the log says which.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
from collections.abc import Sequence
from typing import Any

from _bentoml_impl.server.app import ServiceAppFactory
from _bentoml_sdk.method import APIMethod
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.context import trace_context
from bentoml._internal.server.http import access
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.responses import JSONResponse, Response

logger = logging.getLogger("bentoml.prediction_service")


async def _timeout_call(self: TimeoutMiddleware, scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: dict) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"},
                                status_code=504)
            await resp(scope, receive, send)
    else:
        await fut
    finally:
        timer.cancel()  # the only change: release the request's objects now, not after `timeout` s
    return None


def _replace_if_known(owner: Any, name: str, replacement: Any, upstream: Any, source: str, sha256: str,
                      unknown: str) -> bool:
    """Set `owner.name` to `replacement` if it still holds `upstream` (what it held when this module was imported)
    and `source` (the upstream code the replacement relies on) has the known sha256; otherwise log `unknown` and
    leave it alone, BentoML's code or another patch. Idempotent; returns whether the replacement is in place."""
    current = getattr(owner, name)
    if current is replacement:
        return True
    if current is not upstream:
        logger.warning("BentoML's %s.%s was replaced by other code: %s", owner.__name__, name, unknown)
        return False
    if hashlib.sha256(source.encode()).hexdigest() != sha256:
        logger.warning("BentoML's %s.%s is not the known 1.4.40 code: %s", owner.__name__, name, unknown)
        return False
    setattr(owner, name, replacement)
    return True


def _source(function: Any) -> str:
    """The source of an installed BentoML function, or "" if Python cannot find it (then nothing is patched)."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


# sha256 of inspect.getsource(TimeoutMiddleware.__call__) in BentoML 1.4.40.
_TIMEOUT_SHA256 = "fd8b9e3da28ed2b44cfd508d641617e049fcd4986138197ce7bb227332505896"
_upstream_timeout_call = TimeoutMiddleware.__call__


def apply() -> bool:
    """Install the fixed TimeoutMiddleware.__call__ (idempotent). Returns whether it is installed."""
    return _replace_if_known(TimeoutMiddleware, "__call__", _timeout_call, _upstream_timeout_call,
                             _source(_upstream_timeout_call), _TIMEOUT_SHA256, "the timer fix is not applied")


# sha256 of the source of access.AccessLogMiddleware and of the app's middleware builder in BentoML 1.4.40, joined.
_ACCESS_LOG_SHA256 = "f2b4027ce60624d2808cb23616d19a659f8af632b9602b931e9c30f718cd1f82"
_upstream_access_log = access.AccessLogMiddleware


class _AccessLogSkipping(access.AccessLogMiddleware):
    """BentoML's access log, with `extra_skip_paths` added to the paths it leaves out."""

    extra_skip_paths: tuple[str, ...] = ()

    def __init__(self, app: Any, *args: Any, skip_paths: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(app, *args, skip_paths=[*skip_paths, *self.extra_skip_paths], **kwargs)


def _access_log_source() -> str:
    """The code `skip_access_log` relies on: the access-log class (its `skip_paths` check) and the middleware
    builder that imports it from its module at build time (so replacing the module's attribute takes effect)."""
    return _source(_upstream_access_log) + _source(getattr(ServiceAppFactory.middlewares, "fget", None))


def skip_access_log(paths: Sequence[str]) -> bool:
    """Leave requests whose path starts with one of `paths` out of BentoML's access log (not out of its metrics).
    Returns whether it is in effect; call it before the server builds its app (at import of the service)."""
    installed = _replace_if_known(access, "AccessLogMiddleware", _AccessLogSkipping, _upstream_access_log,
                                  _access_log_source(), _ACCESS_LOG_SHA256, "prediction routes stay in it")
    if installed:
        _AccessLogSkipping.extra_skip_paths = tuple(paths)
    return installed


# sha256 of the source of APIMethod.__get__ and of APIMethod._local_call in BentoML 1.4.40, joined.
_LOCAL_CALL_SHA256 = "0fd2b96bff2592c70d7274eebb22723bd0b5f9de042fc98a82e74a5506670ece"
_LOCAL_CALLS = "_bentoml_local_calls"  # the instance attribute holding {id(api method): its wrapper}
_upstream_local_call = APIMethod._local_call


def _cached_local_call(self: APIMethod, instance: Any) -> Any:
    cache = getattr(instance, "__dict__", {}).setdefault(_LOCAL_CALLS, {})
    caller = cache.get(id(self))  # API methods are class attributes: their ids stay theirs
    if caller is None:
        caller = cache[id(self)] = _upstream_local_call(self, instance)
    return caller


def _local_call_source() -> str:
    return _source(APIMethod.__get__) + _source(_upstream_local_call)


def cache_local_calls() -> bool:
    """Install the cached `APIMethod._local_call`. Returns whether it is installed."""
    return _replace_if_known(APIMethod, "_local_call", _cached_local_call, _upstream_local_call, _local_call_source(),
                             _LOCAL_CALL_SHA256, "its wrappers are built per request")


# sha256 of inspect.getsource(ServiceAppFactory._add_response_headers) in BentoML 1.4.40.
_RESPONSE_HEADERS_SHA256 = "5c3537e5a178f15685e23b6cfd70f69dcf97553b5de53f1e887f9b7f6316e45f"
_upstream_response_headers = ServiceAppFactory._add_response_headers


@functools.cache
def _header_settings() -> tuple[dict[str, str], bool]:
    """(logging_format, whether to send trace ids): configuration, fixed once the server has started."""
    return BentoMLContainer.logging_formatting.get(), bool(BentoMLContainer.http.response.trace_id.get())


def _add_response_headers(self: ServiceAppFactory, resp: Response) -> None:
    logging_format, send_trace_id = _header_settings()
    resp.headers.update({"Server": f"BentoML Service/{self.service.name}"})
    if trace_context.request_id is not None:
        resp.headers["X-BentoML-Request-ID"] = format(trace_context.request_id, logging_format["span_id"])
    if send_trace_id and trace_context.trace_id is not None:
        resp.headers["X-BentoML-Trace-ID"] = format(trace_context.trace_id, logging_format["trace_id"])


def cache_response_headers() -> bool:
    """Install the `_add_response_headers` above. Returns whether it is installed."""
    return _replace_if_known(ServiceAppFactory, "_add_response_headers", _add_response_headers,
                             _upstream_response_headers, _source(_upstream_response_headers), _RESPONSE_HEADERS_SHA256,
                             "its per-call lookups stay")
