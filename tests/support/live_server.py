"""A real `bentoml serve` process on a free 127.0.0.1 port, for tests that talk HTTP to it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.server_process import ServerProcess, free_port
from tests.support import PROJECT_ROOT


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


class LiveServer(ServerProcess):
    """`bentoml serve TARGET` logging to `log_dir`; `stop()` ends it and every worker it spawned.

    `env` adds to (a value None: removes from) the test process's environment and the defaults below. The
    development target serves the served set SERVED_MODELS names (the session's pipeline, tests/conftest.py)."""

    def __init__(self, target: str, log_dir: Path, env: dict[str, str | None] | None = None,
                 cwd: Path = PROJECT_ROOT, work_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        work_dir = work_dir or log_dir.parent
        environment = dict(os.environ)
        environment.update({"PREDICTION_LOG_DIR": str(log_dir), "OMP_NUM_THREADS": "1",
                            "BENTOML_HOME": str(private_home(work_dir / f"bentoml-{self.port}")),
                            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"})
        if not target.startswith("bento_service."):  # a built Bento serves the served set it carries
            environment.pop("SERVED_MODELS", None)
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        command = [str(Path(sys.executable).parent / "bentoml"), "serve", target, "--host", "127.0.0.1",
                   "--port", str(self.port)]
        super().__init__(command, cwd=cwd, env=environment, output=work_dir / f"server-{self.port}.log",
                         ready_url=f"{self.url}/readyz")
