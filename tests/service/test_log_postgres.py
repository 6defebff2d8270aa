"""The prediction log on PostgreSQL, for many replicas: a real server (the session's cluster), live services.

- the offline tools read the same results from either store;
- servers starting at once migrate the schema once, without racing;
- an idle worker's log notices by itself that the server went away (its readiness turns 503) and came back;
- two `bentoml serve` processes (2 workers each) share one database under load from 16 clients: PostgreSQL
  crashes (`pg_ctl -m immediate`) mid-load and both servers answer 503 while it is down, never a 200 without a
  row, and recover by themselves once it is back; one server's whole process tree is SIGKILLed mid-load and the
  other keeps answering; every acknowledged request is in the table, and the monitor counts every row.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from monitoring.logquery import open_window
from monitoring.monitor import main as monitor
from monitoring.report import summarise
from monitoring.sample import draw
from prediction_log.location import parse_url, sqlite_in
from prediction_log.postgres_store import PostgresStore
from prediction_log.schema import MIGRATIONS, SCHEMA_VERSION
from prediction_log.store import ErrorRow, ExplanationRow, PredictionRow
from prediction_log.writer import PredictionLog
from tests.service.test_service import HOUSING_ROW
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer
from tests.support.old_logs import create_version_4_log
from tests.support.postgres import PostgresCluster
from tests.support.traffic import traffic

RECOVERY_S = 10  # the bound: both servers answer again within this of PostgreSQL coming back


def _rows() -> list[PredictionRow | ErrorRow]:
    rows: list[PredictionRow | ErrorRow] = [
        PredictionRow(f"r{i}", "housing", "housing-regressor:x", {"median_income": i, "ocean_proximity": None},
                      100_000.0 * i, float(i), f"2026-11-30T10:{i:02d}:00.000000+00:00") for i in range(1, 31)]
    rows += [PredictionRow("i1", "iris", "iris-classifier:y", {"petal_width": 0.2},
                           {"species": "setosa", "probabilities": {"setosa": 0.9, "virginica": 0.1}}, 2.0,
                           "2026-11-30T10:40:00.000000+00:00")]
    rows.append(ErrorRow("bad", "housing", 400, {"error": "x"}, 1.0, "2026-11-30T10:45:00.000000+00:00"))
    # an explanation goes to its own table: it changes no prediction statistics
    rows.append(ExplanationRow("why", "housing", "housing-regressor:x", {"median_income": 3.0},
                               {"prediction": 2.0, "base_value": 1.0, "contributions": {"median_income": 1.0}}, 9.0,
                               "2026-11-30T10:50:00.000000+00:00"))
    return rows


def test_report_and_query_layer_give_the_same_results_from_either_store(postgres_database: str,
                                                                          tmp_path: Path) -> None:
    stores = {"sqlite": sqlite_in(tmp_path), "postgresql": parse_url(postgres_database)}
    for location in stores.values():
        log = PredictionLog(location)
        log.start()
        asyncio.run(log.write(_rows()))
        log.close()
    for since in (None, "2026-11-30T10:20:00+00:00", "2999-01-01T00:00:00+00:00"):
        first, second = (summarise(location, since) for location in stores.values())
        assert first == second, since
    assert summarise(stores["postgresql"])["housing"]["requests"] == 31
    with psycopg.connect(postgres_database) as connection:
        logged = connection.execute("SELECT request_id, prediction FROM explanations").fetchall()
    assert logged == [("why", {"prediction": 2.0, "base_value": 1.0, "contributions": {"median_income": 1.0}})]
    samples = []
    for location in stores.values():
        with open_window(location, "housing", None) as window:
            samples.append(draw(window, 100, seed=7, window_rows=30).rows)
    for column in ("request_id", "position", "model", "inputs", "prediction"):
        assert samples[0][column].tolist() == samples[1][column].tolist(), column
    assert len(samples[0]) == 30


def test_the_same_window_gives_the_same_statistics_and_sample_from_either_store(postgres_database: str,
                                                                                  tmp_path: Path) -> None:
    """The same rows in both stores: equal operations (per time bucket too) and the same sample, row for row, for
    the same seed and window; another seed draws other rows."""
    from datetime import UTC, datetime, timedelta

    from monitoring.operations import operations, prediction_distribution
    from tests.unit.test_window_queries import write_log

    stores = {"sqlite": sqlite_in(tmp_path), "postgresql": parse_url(postgres_database)}
    for location in stores.values():
        write_log(location, requests=2000, old=300, seed=5)
    since = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
    drawn: dict[tuple[str, int], list] = {}
    statistics = {}
    for name, location in stores.items():
        with open_window(location, "housing", since) as window:
            ops = operations(window)
            statistics[name] = (ops, prediction_distribution(window))
            for seed in (5, 6):
                sample = draw(window, 200, seed, ops["predictions"])
                drawn[name, seed] = sample.rows[["request_id", "position", "model", "prediction"]].values.tolist()
    assert statistics["sqlite"] == statistics["postgresql"]
    assert len(statistics["sqlite"][0]["over_time"]) > 20
    assert drawn["sqlite", 5] == drawn["postgresql", 5] and len(drawn["sqlite", 5]) == 200
    assert drawn["sqlite", 6] == drawn["postgresql", 6] and drawn["sqlite", 6] != drawn["sqlite", 5]


def seq_scans(connection: psycopg.Connection, sql: str, args: tuple) -> list[str]:
    """The log's tables that PostgreSQL's plan for a query reads without an index (Seq Scan)."""
    (plan,) = connection.execute(f"EXPLAIN (FORMAT JSON) {sql}", args).fetchone()[0]
    reads, nodes = [], [plan["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if node.get("Relation Name") in ("predictions", "request_errors", "feedback"):
            reads.append(node)
    assert reads, plan  # the query reads the log
    return [node["Relation Name"] for node in reads if node["Node Type"] == "Seq Scan"]


def test_every_query_of_the_window_uses_an_index_on_postgresql(postgres_database: str) -> None:
    """A day's window in a log whose other rows are two days old (analyzed, as autovacuum keeps it): every query
    the report and the monitor send reads the window through an index."""
    from datetime import UTC, datetime, timedelta

    from monitoring import feedback_window
    from monitoring.operations import operations, prediction_distribution
    from tests.unit.test_window_queries import write_log

    location = parse_url(postgres_database)
    write_log(location, requests=400, hours=10, old=30_000, seed=8)
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    with open_window(location, "housing", (datetime.now(UTC) - timedelta(hours=24)).isoformat()) as window:
        ops = operations(window)
        prediction_distribution(window)
        draw(window, 100, 3, ops["predictions"])
        window.newest_model()
        feedback_window.arm_counts(window)
        for rows in (feedback_window.rows, feedback_window.pairs, feedback_window.unshadowed):
            assert sum(len(chunk) for chunk in rows(window)) > 0, rows
        assert len(window.executed) >= 11
        for sql, args in window.executed:
            assert seq_scans(window.connection, sql, args) == [], sql
        # the check can fail: a filter no index holds is a sequential scan
        assert seq_scans(window.connection, "SELECT COUNT(*) FROM predictions WHERE latency_ms > %s", (1.0,))


def test_servers_starting_at_once_migrate_once(postgres_database: str) -> None:
    location = parse_url(postgres_database)
    stores = [PostgresStore(location) for _ in range(8)]
    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(lambda store: store.open(), stores))
    for store in stores:
        store.close()
    with psycopg.connect(postgres_database) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == sorted(MIGRATIONS) and versions[-1] == SCHEMA_VERSION


@pytest.fixture
def crashable(postgres: PostgresCluster) -> Iterator[PostgresCluster]:
    """The session's cluster, for a test that crashes it: started again afterwards, whatever the test did (ask for
    it after `postgres_database`, whose database is dropped once the server is back)."""
    try:
        yield postgres
    finally:
        if not postgres.running:
            postgres.resume()


def test_an_idle_log_turns_unhealthy_when_the_server_goes_away_and_healthy_when_it_returns(
        postgres_database: str, crashable: PostgresCluster) -> None:
    """A worker without traffic holds a connection that looks open after the server is gone: its readiness must
    not wait for a request to find out."""
    health: list[bool] = []
    log = PredictionLog(parse_url(postgres_database), on_health=health.append)
    log.start()
    try:
        crashable.crash()
        deadline = time.monotonic() + 5
        while log.healthy and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not log.healthy and health == [False], "an idle worker still reports its log writable"
        crashable.resume()
        deadline = time.monotonic() + RECOVERY_S
        while not log.healthy and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.healthy and health == [False, True]
        asyncio.run(log.write([PredictionRow("after", "housing", "m", {"x": 1}, 1.0, 1.0)]))
    finally:
        log.close()
    assert _logged(postgres_database) == {"after"}


# -- live: two servers, one database ----------------------------------------------------------------------

@dataclass
class Load:
    """16 clients over the servers' URLs; every request carries its own id, so a 503 can be checked too."""

    urls: list[str]
    answered: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # 503: the log could not be written
    other: list[tuple[int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    last_ok: dict[str, float] = field(default_factory=dict)

    def run(self, clients: int = 16) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(self.urls[i % len(self.urls)],), daemon=True)
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        return threads

    def _client(self, url: str) -> None:
        with httpx.Client(timeout=15) as client:
            while not self.stop.is_set():
                request_id = uuid.uuid4().hex
                try:
                    response = client.post(f"{url}/housing/predict", json=HOUSING_ROW,
                                           headers={"X-Request-ID": request_id})
                except httpx.HTTPError:
                    time.sleep(0.05)  # a killed server: connection refused
                    continue
                if response.status_code == 200:
                    self.answered.append(request_id)
                    self.last_ok[url] = time.monotonic()
                elif response.status_code == 503:
                    self.refused.append(request_id)
                    time.sleep(0.02)
                else:
                    self.other.append((response.status_code, response.text[:200]))


@pytest.fixture
def two_servers(built_repo: PipelineRepo, postgres_database: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    servers = [LiveServer("bento_service.service:PredictionService", tmp_path / f"logs-{i}", work_dir=tmp_path,
                          env={"PREDICTION_LOG_URL": postgres_database, "WORKERS": "2"}) for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _logged(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        return {row[0] for row in connection.execute("SELECT request_id FROM predictions")}


def test_two_servers_share_one_database_through_a_crash_and_a_kill(two_servers: list[LiveServer],
                                                                     crashable: PostgresCluster,
                                                                     postgres_database: str, built_repo: PipelineRepo,
                                                                     tmp_path: Path) -> None:
    first, second = two_servers
    load = Load([first.url, second.url])
    threads = load.run(16)
    try:
        time.sleep(3)
        assert len(load.answered) > 50, "no traffic got through before the crash"

        crashable.crash()  # -- PostgreSQL goes away mid-load
        crashed = len(load.refused)
        time.sleep(3)
        assert len(load.refused) > crashed, "no 503 while PostgreSQL was down"
        for server in two_servers:
            assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503
        crashable.resume()
        back = time.monotonic()
        deadline = back + RECOVERY_S
        while time.monotonic() < deadline and not all(load.last_ok.get(s.url, 0) > back for s in two_servers):
            time.sleep(0.2)
        recovered = {s.url: round(load.last_ok.get(s.url, 0) - back, 2) for s in two_servers}
        assert all(0 < seconds <= RECOVERY_S for seconds in recovered.values()), recovered
        for server in two_servers:
            assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200

        first.kill()  # -- one server's whole process tree, mid-load
        killed = time.monotonic()
        time.sleep(3)
        assert load.last_ok[second.url] > killed + 1, "the other server stopped answering"
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)

    logged = _logged(postgres_database)
    missing = set(load.answered) - logged
    assert not missing, f"{len(missing)} of {len(load.answered)} answered predictions are not in the table"
    # A commit whose acknowledgement was lost in the crash may have landed: reported as 503, logged anyway.
    assert len(set(load.refused) & logged) <= 2
    assert load.other == []

    # the monitor, over both servers' traffic, counts every row
    second.stop()
    rows = len(logged)
    assert summarise(parse_url(postgres_database))["housing"]["predictions"] == rows
    reference = built_repo.path / "models" / "housing" / "reference.json"
    out = tmp_path / "reports"
    code = monitor(["--task", "housing", "--log-url", postgres_database, "--out", str(out),
                    "--reference", str(reference), "--params", str(built_repo.path / "params.yaml")])
    assert code in (0, 1, 4), code  # a verdict, not a problem
    summary = json.loads((out / "housing-monitor.json").read_text())
    assert summary["counts"]["predictions"] == rows


def test_a_server_started_before_its_database_is_reachable_waits_then_serves(built_repo: PipelineRepo,
                                                                               postgres: PostgresCluster,
                                                                               tmp_path: Path) -> None:
    """...and never writes the password it was given into its log."""
    name = f"late_{uuid.uuid4().hex[:8]}"
    url = postgres.url(name)
    with_password = url.replace("@", ":not-for-logs@", 1)  # the cluster trusts loopback: any password works
    server = LiveServer("bento_service.service:PredictionService", tmp_path / "logs", work_dir=tmp_path,
                        env={"PREDICTION_LOG_URL": with_password})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(2)
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503  # the database does not exist yet
        postgres.create_database(name=name)
        server.wait_ready(timeout=30)
        request = traffic(built_repo, "housing", 1, seed=0)[0]
        assert httpx.post(f"{server.url}/housing/predict", json=request, timeout=10).status_code == 200
        assert len(_logged(url)) == 1
        assert name in server.log_text() and "not-for-logs" not in server.log_text()
    finally:
        server.stop()
        postgres.drop_database(name)


def test_prune_deletes_old_rows_in_batches_while_the_writers_go_on(postgres_database: str, capsys) -> None:
    from prediction_log.prune import main as prune_main

    location = parse_url(postgres_database)
    old = "2020-01-01T00:00:00+00:00"
    with psycopg.connect(postgres_database) as connection:
        PostgresStore(location).open()  # the tables
        with connection.cursor() as cursor, cursor.copy(
                "COPY predictions (ts, request_id, task, model, inputs, prediction, latency_ms) FROM STDIN") as copy:
            for i in range(20_000):
                copy.write_row((old, f"old{i}", "iris", "m", "{}", "1", 1.0))
    log = PredictionLog(location)
    log.start()
    pruned = threading.Thread(target=prune_main, args=(["--log-url", postgres_database, "--days", "30",
                                                        "--batch", "1000"],))
    written_while_pruning = 0
    pruned.start()
    for i in range(200):
        asyncio.run(log.write([PredictionRow(f"new{i}", "iris", "m", {}, 1.0, 1.0)]))
        written_while_pruning += pruned.is_alive()
    pruned.join(timeout=120)
    log.close()
    assert "deleted 20000 rows" in capsys.readouterr().out
    assert written_while_pruning > 0, "the prune finished before any write: nothing shows that writers went on"
    assert _logged(postgres_database) == {f"new{i}" for i in range(200)}


# -- feedback ------------------------------------------------------------------------------------

def test_feedback_statuses_on_postgresql(postgres_database: str) -> None:
    from prediction_log.feedback import open_feedback_store
    from tests.unit.test_feedback import check_statuses, shadowed_rows

    location = parse_url(postgres_database)
    log = PredictionLog(location)
    log.start()
    asyncio.run(log.write(shadowed_rows()))
    log.close()
    store = open_feedback_store(location)
    try:
        check_statuses(store)
    finally:
        store.close()
    with psycopg.connect(postgres_database) as connection:
        stored = connection.execute("SELECT task, request_id, position, actual FROM feedback ORDER BY id").fetchall()
        arms = connection.execute("SELECT arm, position FROM predictions WHERE request_id = 'req' "
                                  "ORDER BY id").fetchall()
    assert stored == [("housing", "req", 0, 150.0), ("housing", "req", 1, 151.0), ("housing", "ab", 0, 4.0),
                      ("iris", "flower", 0, "setosa")]
    assert arms == [("champion", 0), ("champion", 1), ("shadow", 0), ("shadow", 1)]


def test_a_version_4_log_migrates_to_5_keeping_its_rows_on_postgresql(postgres_database: str) -> None:
    from prediction_log.feedback import FeedbackItem, open_feedback_store

    with psycopg.connect(postgres_database, autocommit=True) as connection:
        create_version_4_log(connection.execute, "postgresql")
    store = open_feedback_store(parse_url(postgres_database))  # migrates, as a server does when it opens the log
    try:
        old, third = store.record("housing", [FeedbackItem("old", 0, 2.0), FeedbackItem("batch", 2, 3.0)])
    finally:
        store.close()
    assert old.status == "stored" and [(p.arm, p.prediction) for p in old.predictions] == [("champion", 1.5)]
    assert third.status == "stored" and [(p.arm, p.prediction) for p in third.predictions] == [("champion", 12.0)]
    with psycopg.connect(postgres_database) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_version ORDER BY version")]
        kept = connection.execute("SELECT request_id, arm, position FROM predictions ORDER BY id").fetchall()
    assert versions == [1, 2, 4, 5, 6]
    assert kept == [("old", "champion", 0), *(("batch", "champion", position) for position in range(3))]


def test_feedback_reconnects_after_the_server_restarts(postgres_database: str, crashable: PostgresCluster) -> None:
    from prediction_log.feedback import FeedbackItem, FeedbackUnavailable, open_feedback_store
    from prediction_log.writer import LogUnavailable

    location = parse_url(postgres_database)
    log = PredictionLog(location)
    log.start()
    asyncio.run(log.write([PredictionRow("r", "housing", "m", {}, 1.0, 1.0)]))
    log.close()
    store = open_feedback_store(location)
    try:
        crashable.crash()
        with pytest.raises(FeedbackUnavailable) as raised:
            store.record("housing", [FeedbackItem("r", 0, 1.0)])
        assert isinstance(raised.value, LogUnavailable)  # the service answers 503
        crashable.resume()
        assert [r.status for r in store.record("housing", [FeedbackItem("r", 0, 1.0)])] == ["stored"]
    finally:
        store.close()
