"""The servers under benchmark: the project (`bentoml serve`), its peers, and the project at another revision.

Each runs as a scripts/server_process.ServerProcess (a session of its own on a free loopback port,
stopped with every worker) with OMP_NUM_THREADS=1: with two cores shared by workers and the load
generator, a bigger OpenMP pool only fights the event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from bench import workload
from domain.schema import SCHEMAS
from scripts.server_process import ServerProcess, free_port

VENV_BIN = Path(sys.executable).parent


def _base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update({"OMP_NUM_THREADS": "1", "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1",
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"})
    env.update(extra)
    return env


class Server:
    """A server process group. Subclasses set `name`, `predict_path`, `ready_path` and `command()`."""

    name = "server"
    predict_path = "/"
    ready_path = "/"
    logs_predictions = False

    def __init__(self, work_dir: Path, workers: int) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.work_dir = work_dir / f"{self.name}-w{workers}"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process: ServerProcess | None = None
        self.started_s = 0.0

    @property
    def label(self) -> str:
        return f"{self.name} w{self.workers}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return _base_env()

    def cwd(self) -> Path:
        return self.work_dir

    def body(self, row: dict[str, Any]) -> bytes:
        return workload.project_body(row)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.process = ServerProcess(self.command(), cwd=self.cwd(), env=self.env(),
                                     output=self.work_dir / "server.log", ready_url=self.url + self.ready_path)

    def wait_ready(self, timeout: float = 180) -> None:
        assert self.process is not None
        self.process.wait_ready(timeout)
        self.started_s = self.process.ready_after_s

    def output_tail(self, chars: int = 3000) -> str:
        return self.process.log_text()[-chars:] if self.process is not None else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    # -- measurements --------------------------------------------------------------------
    def processes(self) -> list[psutil.Process]:
        return self.process.processes() if self.process is not None and self.process.running else []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of every live process of the server."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def memory(self) -> list[dict[str, Any]]:
        """RSS of each process of the server, with its role (worker or supervisor/helper)."""
        out = []
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.cmdline())
                rss_mb = round(proc.memory_info().rss / 2**20, 1)
                out.append({"pid": proc.pid, "role": self.role(cmdline), "rss_mb": rss_mb, "cmd": cmdline[:120]})
        return out

    def role(self, cmdline: str) -> str:
        return "worker"

    def logged_rows(self) -> int | None:
        """Predictions the server has logged (None when it keeps no log)."""
        return None


class ProjectServer(Server):
    """`bentoml serve` of the project: the development target from the code root, or a built Bento.

    BENTOML_HOME is private (BentoML empties $BENTOML_HOME/prometheus_multiproc_dir at start, so
    servers must not share one) and holds exactly the models of the repository's served set, written out as
    one JSON file that SERVED_MODELS names (a revision that still resolved `<name>:latest` finds them too).
    """

    name = "project"
    predict_path = "/housing/predict"
    ready_path = "/readyz"
    logs_predictions = True

    def __init__(self, work_dir: Path, workers: int, code_root: Path, repo: Path, target: str | None = None) -> None:
        super().__init__(work_dir, workers)
        self.code_root = code_root
        self.repo = repo
        self.target = target or "bento_service.service:PredictionService"
        self.log_dir = self.work_dir / "prediction-logs"
        self.home = self.work_dir / "bentoml-home"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "bentoml"), "serve", self.target, "--host", "127.0.0.1", "--port", str(self.port)]

    def cwd(self) -> Path:
        return self.code_root

    def env(self) -> dict[str, str]:
        private_bentoml_home(self.home, self.repo)
        served = self.work_dir / "served_models.json"
        served.write_text(json.dumps(served_tags(self.repo)))
        return _base_env(PREDICTION_LOG_DIR=str(self.log_dir), WORKERS=str(self.workers), BENTOML_HOME=str(self.home),
                         SERVED_MODELS=str(served))

    def role(self, cmdline: str) -> str:
        return "worker" if "_bentoml_impl.worker" in cmdline else "supervisor"

    def logged_rows(self) -> int | None:
        path = self.log_dir / "predictions.db"
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            return int(db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])


class PostgresLoggingServer(ProjectServer):
    """The project's own service, same code and models, logging to PostgreSQL (PREDICTION_LOG_URL) instead of
    SQLite: what a replica of the Kubernetes deployment does."""

    name = "project-pg"

    def __init__(self, work_dir: Path, workers: int, code_root: Path, repo: Path, log_url: str,
                 target: str | None = None) -> None:
        super().__init__(work_dir, workers, code_root, repo, target)
        self.log_url = log_url

    def env(self) -> dict[str, str]:
        return {**super().env(), "PREDICTION_LOG_URL": self.log_url}

    def logged_rows(self) -> int | None:
        import psycopg

        with psycopg.connect(self.log_url) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])


def source_bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


def served_tags(repo: Path) -> dict[str, dict[str, str]]:
    """The repository's served set, {task: {"champion": tag, "challenger": tag}} (models/<task>/bento_tags.json)."""
    from bento_service.served_set import read_served_set

    return read_served_set(repo)[0]  # type: ignore[return-value]


def private_bentoml_home(home: Path, repo: Path) -> Path:
    """A BentoML home whose model store holds only the repository's packaged models (symlinks)."""
    source = source_bentoml_home()
    tags = served_tags(repo)
    for tag in (tag for roles in tags.values() for tag in roles.values()):
        name, version = tag.split(":")
        stored = source / "models" / name / version
        if not stored.is_dir():
            raise FileNotFoundError(f"model {tag} (the served set) is not in {source}/models: "
                                    "run `python -m stages.bento_store` in the repository with this BENTOML_HOME")
        target = home / "models" / name
        target.mkdir(parents=True, exist_ok=True)
        if not (target / version).exists():
            (target / version).symlink_to(stored)
        (target / "latest").write_text(version)
    bentos = home / "bentos"
    if not bentos.exists() and (source / "bentos").is_dir():
        bentos.symlink_to(source / "bentos")
    return home


class ServingPeerServer(ProjectServer):
    """The project's service at another git revision (`--serving-peer REV`, e.g. main: today's service), on the
    same models: `git archive REV` is unpacked into the work dir and served from there, with this tree's
    virtualenv and a private BENTOML_HOME holding exactly the models this repository packaged."""

    name = "serving-peer"

    def __init__(self, work_dir: Path, workers: int, code_root: Path, repo: Path, revision: str) -> None:
        super().__init__(work_dir, workers, code_root, repo)
        self.revision = revision
        self.source = self.work_dir / "source"
        if not self.source.exists():
            self.source.mkdir(parents=True)
            archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=code_root,
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(self.source)], input=archive, check=True)

    def cwd(self) -> Path:
        return self.source


class DocsPeerServer(Server):
    """Peer 3: bench/docs_peer.py, the service of BentoML's docs (batchable API, bentoml.monitor logging)."""

    name = "docs"
    predict_path = "/housing/predict"
    ready_path = "/readyz"
    logs_predictions = True

    def __init__(self, work_dir: Path, workers: int, code_root: Path, repo: Path) -> None:
        super().__init__(work_dir, workers)
        self.code_root = code_root
        self.repo = repo
        self.monitor_dir = self.work_dir / "monitoring"
        self.home = self.work_dir / "bentoml-home"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "bentoml"), "serve", "bench.docs_peer:HousingDocsPeer", "--host", "127.0.0.1",
                "--port", str(self.port)]

    def cwd(self) -> Path:
        return self.code_root

    def env(self) -> dict[str, str]:
        private_bentoml_home(self.home, self.repo)
        return _base_env(DOCS_PEER_LOG_DIR=str(self.monitor_dir), WORKERS=str(self.workers),
                         BENTOML_HOME=str(self.home))

    def body(self, row: dict[str, Any]) -> bytes:
        return workload.docs_peer_body(row)

    def role(self, cmdline: str) -> str:
        return "worker" if "_bentoml_impl.worker" in cmdline else "supervisor"

    def logged_rows(self) -> int | None:
        """Rows bentoml.monitor wrote: one JSON line per record under <log_path>/<monitor name>/data/."""
        rows = 0
        for path in self.monitor_dir.glob("*/data/*.log*"):
            with open(path, "rb") as handle:
                rows += sum(1 for line in handle if line.strip())
        return rows


class MlflowServer(Server):
    """Peer 1: `mlflow models serve --env-manager local` of the registered champion (uvicorn + FastAPI)."""

    name = "mlflow"
    predict_path = "/invocations"
    ready_path = "/ping"

    def __init__(self, work_dir: Path, workers: int, repo: Path) -> None:
        super().__init__(work_dir, workers)
        self.repo = repo
        self.model_uri = f"models:/{SCHEMAS['housing'].model_name}@champion"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "mlflow"), "models", "serve", "-m", self.model_uri, "--env-manager", "local",
                "--workers", str(self.workers), "--host", "127.0.0.1", "--port", str(self.port)]

    def env(self) -> dict[str, str]:
        # mlflow launches `uvicorn` through PATH: the virtualenv's bin must be on it (stack.md).
        return _base_env(MLFLOW_TRACKING_URI=f"sqlite:///{self.repo.resolve() / 'mlflow.db'}")

    def body(self, row: dict[str, Any]) -> bytes:
        return workload.mlflow_body(row)

    def role(self, cmdline: str) -> str:
        if "resource_tracker" in cmdline or "mlflow models serve" in cmdline or "bin/mlflow" in cmdline:
            return "supervisor"
        if self.workers > 1 and "spawn_main" not in cmdline:
            return "supervisor"  # uvicorn's manager process; the workers are multiprocessing children
        return "worker"


class SeedServer(Server):
    """Peer 2: the seed's design (bench/seed_app.py) under uvicorn."""

    name = "seed"
    predict_path = "/housing/predict"
    ready_path = "/health"
    logs_predictions = True

    def __init__(self, work_dir: Path, workers: int, code_root: Path, repo: Path) -> None:
        super().__init__(work_dir, workers)
        self.code_root = code_root
        self.repo = repo
        self.db = self.work_dir / "seed-predictions.db"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "python"), "-m", "uvicorn", "bench.seed_app:app", "--workers", str(self.workers),
                "--host", "127.0.0.1", "--port", str(self.port)]

    def cwd(self) -> Path:
        return self.code_root

    def env(self) -> dict[str, str]:
        return _base_env(SEED_MODEL=str(self.repo / "models" / "housing" / "champion.joblib"), SEED_DB=str(self.db),
                         PYTHONPATH=str(self.code_root))

    def role(self, cmdline: str) -> str:
        if "resource_tracker" in cmdline or (self.workers > 1 and "spawn_main" not in cmdline):
            return "supervisor"
        return "worker"

    def logged_rows(self) -> int | None:
        if not self.db.exists():
            return 0
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as db:
            return int(db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
