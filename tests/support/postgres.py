"""A real PostgreSQL cluster for the test session: Debian's server binaries, `initdb` in a temp dir, `pg_ctl`
on a free 127.0.0.1 port; one database per test.

One cluster per session (a fresh one costs a few seconds), registered as a pytest plugin in tests/conftest.py:
- `postgres` (session): the running `PostgresCluster`, stopped at the end of the session, failures included;
- `postgres_database` (function): the URL of a new, empty database, dropped after the test.

`initdb` refuses to run as root, so as root the cluster belongs to uid/gid 65534 (nobody) and every server
command runs through `setpriv`; the data dir is made with `tempfile.mkdtemp` (pytest's basetemp is private
to root, and nobody could not enter it). Authentication is `trust` on loopback only: the cluster listens on
127.0.0.1 and a Unix socket inside its own directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.server_process import free_port

SUPERUSER = "tests"
NOBODY = 65534


def server_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin dir (Debian: /usr/lib/postgresql/<major>/bin), or None."""
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(candidates, key=lambda p: int(p.parent.name)) if candidates else None


def require_postgres() -> Path:
    """The server's bin dir; skip without one, or fail where CI promises it (REQUIRE_TEAM_SERVERS=1)."""
    bin_dir = server_bin_dir()
    if bin_dir is not None:
        return bin_dir
    reason = "PostgreSQL server binaries not found under /usr/lib/postgresql (bash scripts/install-team-servers.sh)"
    if os.environ.get("REQUIRE_TEAM_SERVERS") == "1":
        pytest.fail(f"REQUIRE_TEAM_SERVERS=1 but {reason}")
    pytest.skip(reason)


class PostgresCluster:
    """A cluster in its own directory, owned by nobody when we are root; `start()`, `create_database()`, `stop()`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
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
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file), "-w", "-t", "60",
                  "start")

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

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster, started on first use and stopped when the session ends."""
    cluster = PostgresCluster(require_postgres())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_database(postgres: PostgresCluster) -> Iterator[str]:
    """The URL of an empty database of the session's cluster, for this test only."""
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)
