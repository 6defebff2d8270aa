"""HTTP clients for tests: one JSON call, and concurrent clients that put a live server under load."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def post_json(url: str, body: object, timeout: float = 30) -> dict:
    """POST `body` as JSON; the decoded answer of a 200 (anything else raises HTTPError)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.status == 200
        return json.loads(response.read())


@contextmanager
def concurrent_clients(client: Callable[[threading.Event], None], count: int) -> Iterator[threading.Event]:
    """Run `client(stop)` in `count` threads; yields `stop`, set (and every thread joined) on leaving."""
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(stop,)) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join()
