"""A real `bentoml serve` process on a free 127.0.0.1 port, for tests that talk HTTP to it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.dvc_repo import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def private_home(path: Path) -> Path:
    """A BENTOML_HOME sharing the session's model and Bento stores but not its Prometheus directory.

    BentoML keeps multiprocess metrics in $BENTOML_HOME/prometheus_multiproc_dir and every server
    empties it at start: two servers on one home would wipe each other's /metrics.
    """
    shared = Path(os.environ["BENTOML_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    for store in ("models", "bentos"):
        (shared / store).mkdir(parents=True, exist_ok=True)
        if not (path / store).exists():
            (path / store).symlink_to(shared / store)
    return path


class LiveServer:
    """`bentoml serve TARGET` in its own process group; `stop()` ends it and everything it spawned."""

    def __init__(self, target: str, log_dir: Path, env: dict[str, str] | None = None,
                 cwd: Path = PROJECT_ROOT, work_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        work_dir = work_dir or log_dir.parent
        self.output = work_dir / f"server-{self.port}.log"
        environment = dict(os.environ)
        environment.update({"PREDICTION_LOG_DIR": str(log_dir), "OMP_NUM_THREADS": "1",
                            "BENTOML_HOME": str(private_home(work_dir / f"bentoml-{self.port}")),
                            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"})
        environment.update(env or {})
        self._out = open(self.output, "wb")  # noqa: SIM115 - closed in stop(), lives as long as the server
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", target, "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=cwd, env=environment, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited {self.process.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        self._out.flush()
        return self.output.read_text(errors="replace")

    def _descendants(self) -> list[psutil.Process]:
        """The server's processes. BentoML starts each worker in a session of its own, so signalling the
        server's process group misses them, and a worker that outlives its parent keeps listening."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the server and every worker: no shutdown hooks, no flushing."""
        if self.process.poll() is None:
            workers = self._descendants()
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self._reap(workers)

    @staticmethod
    def _reap(processes: list[psutil.Process]) -> None:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(processes, timeout=30)

    def stop(self) -> None:
        workers = self._descendants()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        else:  # leader gone: make sure no worker is left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._reap(workers)  # anything the graceful stop or the kill left behind
        self._out.close()
