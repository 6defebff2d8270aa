"""A server under test or benchmark: one process on a free loopback port, stopped with everything it started.

Shared by tests/ and bench/. Why it needs care: BentoML starts each worker in a session of its own, so
signalling the server's process group misses them, and a worker that outlives its parent keeps
listening. `stop()` and `kill()` therefore collect the whole process tree (psutil) before signalling
and reap whatever is left afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`command` in a new session, output to `output`; `wait_ready` polls `ready_url` for a 200, or, for a
    server that speaks no HTTP (sshd), waits until 127.0.0.1:`ready_port` accepts connections."""

    def __init__(self, command: Sequence[str], *, cwd: Path, env: Mapping[str, str], output: Path,
                 ready_url: str | None = None, ready_port: int | None = None) -> None:
        if (ready_url is None) == (ready_port is None):
            raise ValueError("give exactly one of ready_url and ready_port")
        self.command = list(command)
        self.output = output
        self.ready_url = ready_url
        self.ready_port = ready_port
        output.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(output, "wb")  # noqa: SIM115 - closed in stop(), lives as long as the server
        self.process = subprocess.Popen(self.command, cwd=cwd, env=dict(env), stdout=self._out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
        self.ready_after_s = 0.0

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited {self.process.returncode}:\n{self.log_text()[-3000:]}")
            if self._ready():
                self.ready_after_s = time.monotonic() - self.started_at
                return
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            if self.ready_url is not None:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                    return response.status == 200
            with socket.create_connection(("127.0.0.1", self.ready_port), timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def log_text(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def processes(self) -> list[psutil.Process]:
        """The server and every process it started (workers included), while the server lives."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the server and every worker: no shutdown hooks, no flushing."""
        tree = self.processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap(tree)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)

    def stop(self, grace: float = 30) -> None:
        """SIGTERM (graceful: BentoML finishes in-flight requests), then SIGKILL whatever is left."""
        tree = self.processes()
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap(tree)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._out.close()

    @staticmethod
    def _reap(processes: list[psutil.Process]) -> None:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(processes, timeout=30)
