"""Bounds on what a client can make a worker hold before a request reaches the application.

uvicorn's httptools protocol buffers a request's headers without limit and sets no timer on a
connection until its first response, so a 64 MB header, or a connection that sends half a header
(or nothing) and waits, costs memory and a file descriptor for as long as the client likes. BentoML
1.4.40 passes uvicorn none of the options that would help (its worker sets only the backlog, TLS
options, `timeout_keep_alive`, default 5 s, and the graceful-shutdown timeout; `bentoml serve` exposes
none of them), so the service installs its own protocol, a subclass of uvicorn's:

- request line and headers at most MAX_HEADER_BYTES (default 16 KiB): else 431 and the connection closed;
- the headers complete within HEADER_TIMEOUT_S (default 10 s) of the connection opening or of the
  request's first byte: else 408 and closed (a connection that sent nothing is just closed);
- an idle keep-alive connection closed after KEEPALIVE_TIMEOUT_S (default 5 s).

A slow body is bounded by BentoML's `traffic.timeout` (504) and its size by the request guard (413).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bento_service.config import settings

logger = logging.getLogger("bentoml.prediction_service")
PROTOCOL = "bento_service.http_limits:LimitedHttpToolsProtocol"

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn's h11 protocol, which bounds headers itself (16 KiB)
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def _reply(transport: asyncio.Transport, status: str, message: str) -> None:
    body = message.encode()
    transport.write(b"".join([f"HTTP/1.1 {status}\r\n".encode(), b"content-type: text/plain; charset=utf-8\r\n",
                              f"content-length: {len(body)}\r\n".encode(), b"connection: close\r\n\r\n", body]))
    transport.close()


if HttpToolsProtocol is not None:
    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a header size bound and a header timeout."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = settings().keep_alive_timeout_s
            self._awaiting_headers = True  # between the end of a request (or the connection's start) and
            self._header_bytes = 0         # the end of the next request's headers
            self._parsed_bytes = 0  # URL and header names and values of the current request, as parsed
            self._header_timer: asyncio.TimerHandle | None = None
            self._rejected = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._rejected:
                return
            if self._awaiting_headers:
                self._header_bytes += len(data)
            super().data_received(data)
            # Still no end of headers: the whole chunk was header bytes, and the parser holds at most one
            # chunk beyond the limit.
            if self._awaiting_headers and self._header_bytes > settings().max_header_bytes:
                self._reject("431 Request Header Fields Too Large",
                             f"request line and headers exceed {settings().max_header_bytes} bytes")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._awaiting_headers = True
            self._parsed_bytes = 0
            if self._header_timer is None:
                self._arm_header_timer()

        def on_url(self, url: bytes) -> None:
            self._parsed_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._parsed_bytes += len(name) + len(value) + 4
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False
            self._header_bytes = 0
            self._cancel_header_timer()
            if self._parsed_bytes > settings().max_header_bytes:  # headers that arrived in one chunk
                self._reject("431 Request Header Fields Too Large",
                             f"request line and headers exceed {settings().max_header_bytes} bytes")
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._rejected:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._rejected:
                return
            super().on_message_complete()
            self._awaiting_headers = True  # what follows is the next request (or nothing: keep-alive timer)
            self._header_bytes = 0

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(settings().header_timeout_s, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if not self._awaiting_headers or self.transport.is_closing():
                return
            if self._header_bytes == 0:
                self.transport.close()  # connected and said nothing
            else:
                self._reject("408 Request Timeout", f"headers not complete within {settings().header_timeout_s} s")

        def _reject(self, status: str, message: str) -> None:
            self._rejected = True
            self._cancel_header_timer()
            logger.warning("closing a connection from %s: %s", self.client, message)
            _reply(self.transport, status, message)


def install() -> bool:
    """Make uvicorn's "auto" HTTP protocol (what BentoML's worker uses) the limited one; idempotent."""
    if HttpToolsProtocol is None:
        logger.warning("httptools is not installed: uvicorn's h11 protocol bounds headers to 16 KiB, "
                       "but there is no header timeout")
        return False
    from uvicorn import config

    protocols = getattr(config, "HTTP_PROTOCOLS", None)
    if not isinstance(protocols, dict) or "auto" not in protocols:
        logger.warning("uvicorn has no HTTP_PROTOCOLS['auto']: header limits and timeouts not installed")
        return False
    protocols["auto"] = PROTOCOL
    return True
