"""A real PostgreSQL cluster for the test session (scripts/postgres_cluster.py); one database per test.

One cluster per session (a fresh one costs a few seconds), registered as a pytest plugin in tests/conftest.py:
- `postgres` (session): the running `PostgresCluster`, stopped at the end of the session, failures included;
- `postgres_database` (function): the URL of a new, empty database, dropped after the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.postgres_cluster import PostgresCluster, server_bin_dir


def require_postgres() -> Path:
    """The server's bin dir; skip without one, or fail where CI promises it (REQUIRE_TEAM_SERVERS=1)."""
    bin_dir = server_bin_dir()
    if bin_dir is not None:
        return bin_dir
    reason = "PostgreSQL server binaries not found under /usr/lib/postgresql (bash scripts/install-team-servers.sh)"
    if os.environ.get("REQUIRE_TEAM_SERVERS") == "1":
        pytest.fail(f"REQUIRE_TEAM_SERVERS=1 but {reason}")
    pytest.skip(reason)


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
