"""Concurrent HTTP clients for tests that put a live server under load."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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
