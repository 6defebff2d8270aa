"""A PostgreSQL cluster of its own for tests and benchmarks: Debian's server binaries, `initdb` in a temp dir,
`pg_ctl` on a free 127.0.0.1 port.

`initdb` refuses to run as root, so as root the cluster belongs to uid/gid 65534 (nobody) and every server
command runs through `setpriv`; the data dir is made with `tempfile.mkdtemp`. Authentication is `trust` on
loopback only: the cluster listens on 127.0.0.1 and a Unix socket inside its own directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from scripts.server_process import free_port


def server_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin dir (Debian: /usr/lib/postgresql/<major>/bin), or None."""
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(candidates, key=lambda p: int(p.parent.name)) if candidates else None


SUPERUSER = "tests"
NOBODY = 65534


class PostgresCluster:
    """A cluster in its own directory, owned by nobody when we are root; `start()`, `create_database()`, `stop()`."""

    def __init__(self, bin_dir: Path, fsync: bool = False) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync  # off for tests (a crash of the server, not of the machine, loses nothing); on to measure
        self.root = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chown(self.root, NOBODY, NOBODY)

    def _command(self, name: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / name), *args]
        if self.as_root:
            command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
        return command

    def _run(self, name: str, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(self._command(name, *args), capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "LC_ALL": "C"}, cwd=self.root, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{name} exited {result.returncode}:\n{result.stdout}{result.stderr}\n"
                               f"{self.log_text()[-3000:]}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                  "--no-sync")
        self.resume()

    def resume(self) -> None:
        """Start the (initialised) server: at session start, or after `crash()`."""
        fsync = "on" if self.fsync else "off"
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync={fsync}"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file), "-w", "-t", "60",
                  "start")

    def crash(self) -> None:
        """Stop the server as a crash would (`pg_ctl -m immediate`): no shutdown checkpoint, sessions cut."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").is_file()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and delete the cluster's files."""
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.is_file() else ""

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy/MLflow URL: `postgresql://` selects SQLAlchemy 2.1's default driver, psycopg (3)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(statement)

    def create_database(self, prefix: str = "test", name: str | None = None) -> str:
        """A new empty database (named `name`, or prefix + a random part); its name."""
        name = name or f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
