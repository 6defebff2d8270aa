"""Readiness of the whole server, not of the one worker a probe happens to reach.

BentoML answers /readyz from whichever worker accepts the connection, so with several workers a
probe could say "ready" while another worker still loads its models (and answers 503). Each worker
keeps a marker file while it can serve (models loaded, prediction log writable); a worker is
ready to say so only when every worker's marker is there and names a live process. The markers
live in BentoML's Prometheus multiprocess directory, which every server empties when it starts.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class ServerReadiness:
    """Markers `<directory>/worker-<index>` holding the pid of a worker that can serve."""

    def __init__(self, directory: Path | None, index: int, workers: int) -> None:
        self.directory = directory
        self.index = index
        self.workers = workers

    @classmethod
    def from_environment(cls, workers: int) -> ServerReadiness:
        """This worker's view: BentoML's worker id (1-based) and its multiprocess directory, if any."""
        from bentoml._internal.context import server_context

        root = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        return cls(Path(root) / "readiness" if root else None, server_context.worker_index or 1, workers)

    def _marker(self, index: int) -> Path:
        assert self.directory is not None
        return self.directory / f"worker-{index}"

    def publish(self, ready: bool) -> None:
        """Record whether this worker can serve (never raises: a probe answers 503 if it cannot tell)."""
        if self.directory is None:
            return
        with contextlib.suppress(OSError):
            if ready:
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = self._marker(self.index).with_suffix(".tmp")
                tmp.write_text(str(os.getpid()))
                os.replace(tmp, self._marker(self.index))
            else:
                self._marker(self.index).unlink(missing_ok=True)

    def all_ready(self) -> bool:
        """Every worker 1..workers has a marker naming a live process (a single-process server: always)."""
        if self.directory is None or self.workers <= 1:
            return True
        return all(_alive(self._marker(index)) for index in range(1, self.workers + 1))


def _alive(marker: Path) -> bool:
    try:
        pid = int(marker.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True
