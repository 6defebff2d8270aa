"""Hostile clients against a live server: each test reproduces one defect the attack found.

One module-scoped server is shared by the tests that leave no lasting state: 2 workers, OpenMP left
to its defaults (OMP_NUM_THREADS unset), an API key, and short header and keep-alive timeouts so
slow-client tests take seconds. Everything is on loopback and bounded in time and size.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.test_service import HOUSING_ROW, IRIS_ROW, _metric
from tests.support import PROJECT_ROOT
from tests.support.clients import concurrent_clients
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer

API_KEY = "fuzz-key"
AUTH = {"X-API-Key": API_KEY}
HEADER_TIMEOUT_S = 2


def _environment(**extra: str) -> dict[str, str | None]:
    """A server's environment without OMP_NUM_THREADS: the service must limit native threads itself."""
    return {"OMP_NUM_THREADS": None, **extra}


@pytest.fixture(scope="module")
def server(built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer("bento_service.service:PredictionService", tmp_path_factory.mktemp("hostile") / "logs",
                      env=_environment(WORKERS="2", API_KEY=API_KEY, HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
                                       KEEPALIVE_TIMEOUT_S="2"))
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def _workers(live: LiveServer) -> list:
    return [p for p in live.processes() if "_bentoml_impl.worker" in " ".join(p.cmdline())]


# -- 1. two workers, OpenMP at its defaults ----------------------------------------------------

def test_two_workers_without_omp_num_threads_serve_hundreds_not_a_few(server: LiveServer) -> None:
    workers = _workers(server)
    assert len(workers) == 2 and not any("OMP_NUM_THREADS" in p.environ() for p in workers)
    latencies: list[float] = []

    def client(stop: threading.Event) -> None:
        with httpx.Client(timeout=30, headers=AUTH) as http:
            while not stop.is_set():
                started = time.perf_counter()
                assert http.post(f"{server.url}/housing/predict", json=HOUSING_ROW).status_code == 200
                latencies.append(time.perf_counter() - started)
    with concurrent_clients(client, 8):
        time.sleep(4)
    latencies.sort()
    rate, p99 = len(latencies) / 4, latencies[int(0.99 * len(latencies))]
    print(f"\n2 workers, OMP_NUM_THREADS unset, 8 clients: {rate:.0f} req/s, p99 {1000 * p99:.0f} ms")
    assert rate >= 30 and p99 < 2.0, f"{rate:.1f} req/s, p99 {p99:.2f} s"
    # The session's small models make short OpenMP regions, so the collapse itself needs the real champion
    # (README); what causes it is visible with any model: the predicting thread's OpenMP pool.
    metrics = httpx.get(f"{server.url}/metrics").text
    assert _metric(metrics, "prediction_native_threads", api="openmp") == 1


# -- 2. client-chosen field names ---------------------------------------------------------------

def _series(live: LiveServer, name: str) -> int:
    return sum(line.startswith(name + "{") for line in httpx.get(f"{live.url}/metrics", timeout=60).text.splitlines())


def test_unknown_keys_create_no_series_no_big_rows_and_are_refused_early(server: LiveServer) -> None:
    before = _series(server, "validation_failures_total")
    sizes = []
    for attack in range(7):  # each under 1 MiB: 20,000 invented keys
        body = {**HOUSING_ROW, **{f"a{attack}_{i}": 0 for i in range(20_000)}}
        started = time.perf_counter()
        response = httpx.post(f"{server.url}/housing/predict", json=body, headers=AUTH, timeout=60)
        sizes.append((len(response.content), time.perf_counter() - started))
        assert response.status_code == 400 and "keys" in response.json()["error"]
    few = httpx.post(f"{server.url}/housing/predict", json={**HOUSING_ROW, **{f"x{i}": 0 for i in range(40)}},
                     headers=AUTH)
    assert few.status_code == 400 and few.json()["errors"] == 40 and len(few.json()["detail"]) == 20
    after = _series(server, "validation_failures_total")
    print(f"\nvalidation_failures_total series: {before} -> {after}; answers {max(s for s, _ in sizes)} bytes, "
          f"slowest {max(t for _, t in sizes):.3f} s")
    assert after <= 2 * 12, "label values must come from the schema's fields plus one 'unknown'"
    assert _metric(httpx.get(f"{server.url}/metrics").text, "validation_failures_total", field="unknown") >= 1
    assert max(size for size, _ in sizes) < 4096
    with sqlite3.connect(server.log_dir / "predictions.db") as db:
        largest = db.execute("SELECT MAX(LENGTH(error)) FROM request_errors").fetchone()[0]
    assert largest < 8192, f"an error row of {largest} bytes"


# -- 5. headers and slow clients ------------------------------------------------------------------

def _worker_rss_mb(live: LiveServer) -> float:
    return sum(p.memory_info().rss for p in _workers(live)) / 2**20


def _send_huge_header(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /housing/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\nX-Request-ID: ")
        chunk = b"a" * (1 << 20)
        try:
            for _ in range(64):
                sock.sendall(chunk)
        except OSError:  # the server closed the connection: what we want
            return
        sock.sendall(b"\r\n\r\n")
        reply = sock.recv(200)
        assert reply.startswith(b"HTTP/1.1 431"), reply


def test_a_64_mb_request_id_is_refused_without_memory_growth(server: LiveServer) -> None:
    before = _worker_rss_mb(server)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(_send_huge_header, [server.url] * 4))
    growth = _worker_rss_mb(server) - before
    print(f"\nworkers' RSS after four 64 MB X-Request-ID headers: {growth:+.0f} MB")
    assert growth < 60
    assert httpx.post(f"{server.url}/iris/predict", json=IRIS_ROW, headers=AUTH).status_code == 200
    long_id = httpx.post(f"{server.url}/iris/predict", json=IRIS_ROW, headers={**AUTH, "X-Request-ID": "r" * 20_000})
    assert long_id.status_code == 431


@pytest.mark.parametrize("sent", [b"", b"POST /iris/predict HTTP/1.1\r\nHost: x\r\nX-Slow: "],
                         ids=["idle", "partial-headers"])
def test_slow_connections_are_closed(server: LiveServer, sent: bytes) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT_S + 10) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        reply = sock.recv(200)  # b"" once the server closes
        waited = time.monotonic() - started
    assert waited < HEADER_TIMEOUT_S + 3
    assert reply == b"" if not sent else reply.startswith(b"HTTP/1.1 408")


def test_an_idle_keep_alive_connection_is_closed(server: LiveServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(IRIS_ROW).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /iris/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Length: " + str(len(body)).encode() +
                     b"\r\n\r\n" + body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        while sock.recv(4096):  # the rest of the answer, then b"" once the server closes (KEEPALIVE_TIMEOUT_S=2)
            pass
        assert time.monotonic() - started < 4


# -- 7. the OpenAPI document ------------------------------------------------------------------

def test_the_openapi_document_describes_the_service(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/docs.json").json()
    assert document["openapi"].startswith("3.1")
    description = document["info"]["description"]
    assert "BentoML" not in description and "`housing` (regression)" in description
    assert "`iris` (classification)" in description
    schemas = document["components"]["schemas"]
    detail = schemas["ValidationErrorResponse"]["properties"]["detail"]
    assert detail["type"] == "array" and detail["items"]["$ref"].endswith("/FieldError")
    assert set(schemas["FieldError"]["required"]) == {"field", "message"}
    for route in ("/housing/predict", "/housing/predict_batch", "/iris/predict", "/iris/predict_batch"):
        assert {"200", "400", "401", "413", "415", "503", "504"} <= set(document["paths"][route]["post"]["responses"])
        assert document["paths"][route]["post"]["security"] == [{"ApiKey": []}]
    assert "get" in document["paths"]["/model"]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"]}
    bedrooms = schemas["HousingRecord"]["properties"]["total_bedrooms"]
    assert {"type": "null"} in bedrooms["anyOf"] and "total_bedrooms" not in schemas["HousingRecord"]["required"]


def test_schemathesis_finds_no_5xx_and_no_schema_violation(server: LiveServer, tmp_path: Path) -> None:
    """`st run --checks all` over every operation (every POST route, /model and the probes)."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks", "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", f"{server.url}/docs.json", "--checks", "all",
         "--max-examples", "40", "--seed", "13", "--workers", "1", "--request-timeout", "30",
         "-H", f"X-API-Key: {API_KEY}", "--no-color"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # 14 operations: 4 predict, 2 explain, 4 feedback, 4 GET. Generated request ids are not in the log, so feedback
    # mostly answers its documented 404 and schemathesis may warn of missing test data: a warning, not an issue.
    assert "Tested: 14" in output and ("No issues found" in output or "Missing test data" in output), output[-3000:]
    log = server.log_text()
    assert "Traceback" not in log and "status=500" not in log


# -- 8. plausible ranges, null bedrooms -----------------------------------------------------------

@pytest.mark.parametrize(("route", "body", "field"), [
    ("/housing/predict", {**HOUSING_ROW, "total_rooms": 1e308}, "total_rooms"),
    ("/housing/predict", {**HOUSING_ROW, "population": 5e6}, "population"),
    ("/housing/predict", {**HOUSING_ROW, "median_income": 500}, "median_income"),
    ("/housing/predict_batch", {"records": [HOUSING_ROW, {**HOUSING_ROW, "households": 1e9}]}, "records.1.households"),
    ("/iris/predict", {**IRIS_ROW, "petal_length": 80}, "petal_length"),
], ids=["rooms-1e308", "population", "income", "batch-households", "iris-petal"])
def test_implausible_values_get_400_naming_the_field(server: LiveServer, route: str, body: dict, field: str) -> None:
    response = httpx.post(f"{server.url}{route}", json=body, headers=AUTH)
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["detail"]] == [field]


def test_missing_bedrooms_are_accepted_as_the_model_imputes_them(server: LiveServer) -> None:
    without = {k: v for k, v in HOUSING_ROW.items() if k != "total_bedrooms"}
    answers = [httpx.post(f"{server.url}/housing/predict", json=body, headers=AUTH)
               for body in (without, {**HOUSING_ROW, "total_bedrooms": None})]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["prediction"] == answers[1].json()["prediction"] > 0
    batch = httpx.post(f"{server.url}/housing/predict_batch", json={"records": [without, HOUSING_ROW]}, headers=AUTH)
    assert batch.status_code == 200 and batch.json()["predictions"][0] == answers[0].json()["prediction"]
    with sqlite3.connect(server.log_dir / "predictions.db") as db:
        logged = db.execute("SELECT inputs FROM predictions WHERE request_id = ?",
                            (answers[1].json()["request_id"],)).fetchone()[0]
    assert json.loads(logged)["total_bedrooms"] is None


# -- 6. a worker takes requests only once it can serve ---------------------------------------------

def test_no_request_meets_a_worker_still_loading_its_models(tmp_path: Path, built_repo: PipelineRepo) -> None:
    """Two workers load their models in the service's __init__, before they accept a connection: from the first
    200 of /readyz on, every request on a new connection (any worker may accept it) is served, none meets a
    worker that is still starting. /livez says each answering worker serves every task."""
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs", work_dir=tmp_path,
                      env=_environment(WORKERS="2"))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{live.url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, live.log_text()[-3000:]
            time.sleep(0.02)

        def call(_: int) -> int:  # a new connection each: any worker may accept it
            return httpx.post(f"{live.url}/iris/predict", json=IRIS_ROW, timeout=30).status_code
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(200)))
        assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
        assert {httpx.get(f"{live.url}/livez", timeout=5).status_code for _ in range(10)} == {200}
    finally:
        live.stop()


# -- 3. the database deleted under traffic ----------------------------------------------------------

def test_a_deleted_database_is_reopened_and_loses_no_acknowledged_row(tmp_path: Path,
                                                                       built_repo: PipelineRepo) -> None:
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs", env=_environment(WORKERS="2"))
    deleted = threading.Event()
    after: list[str] = []  # requests sent after the deletion and answered 200
    statuses: list[int] = []

    def client(stop: threading.Event) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                sent_after = deleted.is_set()
                response = http.post(f"{live.url}/housing/predict", json=HOUSING_ROW)
                statuses.append(response.status_code)
                if response.status_code == 200 and sent_after:
                    after.append(response.json()["request_id"])
    try:
        live.wait_ready()
        with concurrent_clients(client, 6):
            time.sleep(1.5)
            (tmp_path / "logs" / "predictions.db").unlink()
            deleted.set()
            time.sleep(3)
        metrics = httpx.get(f"{live.url}/metrics").text
        ready = httpx.get(f"{live.url}/readyz").status_code
    finally:
        live.stop()
    with sqlite3.connect(tmp_path / "logs" / "predictions.db") as db:
        logged = {r[0] for r in db.execute("SELECT request_id FROM predictions")}
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(after) > 20
    assert set(after) <= logged, f"{len(set(after) - logged)} of {len(after)} acknowledged rows lost"
    assert _metric(metrics, "prediction_log_reopens_total", file="database", reason="deleted") >= 1
    assert "was deleted under the server; reopened it" in live.log_text()
    assert ready == 200 and statuses.count(200) >= len(statuses) - 12  # at most a few 503 while reopening


# -- 4. a full disk ------------------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the log directory (mounting needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_answers_503_with_nothing_logged_and_recovers(small_tmpfs: Path, tmp_path: Path,
                                                                  built_repo: PipelineRepo) -> None:
    log_dir = small_tmpfs / "logs"
    live = LiveServer("bento_service.service:PredictionService", log_dir, work_dir=tmp_path,
                      env=_environment(WORKERS="1"))
    batch = {"records": [HOUSING_ROW] * 200}
    answers: list[tuple[int, str]] = []
    try:
        live.wait_ready()
        filler = small_tmpfs / "filler"
        with open(filler, "wb") as fh:  # fill the disk, leaving a little room
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        os.truncate(filler, filler.stat().st_size - 200_000)
        for _ in range(30):
            response = httpx.post(f"{live.url}/housing/predict_batch", json=batch, timeout=30)
            answers.append((response.status_code, response.json()["request_id"]))
        assert {status for status, _ in answers} <= {200, 503} and 503 in {s for s, _ in answers}
        deadline = time.monotonic() + 10
        while httpx.get(f"{live.url}/readyz").status_code != 503:
            assert time.monotonic() < deadline, "/readyz still 200 while predictions get 503"
            time.sleep(0.2)
        metrics = httpx.get(f"{live.url}/metrics").text
        assert _metric(metrics, "prediction_log_writable") == 0
        filler.unlink()
        live.wait_ready(timeout=15)  # readiness comes back once the disk has room
        recovered = httpx.post(f"{live.url}/housing/predict_batch", json=batch, timeout=30)
        assert recovered.status_code == 200
        answers.append((200, recovered.json()["request_id"]))
    finally:
        live.stop()
    log = live.log_text()
    assert "database or disk is full" in log or "No space left on device" in log
    assert "cannot rollback" not in log and "Traceback" not in log
    with sqlite3.connect(log_dir / "predictions.db") as db:
        rows = {}
        for (request_id,) in db.execute("SELECT request_id FROM predictions"):
            rows[request_id] = rows.get(request_id, 0) + 1
    lines: dict[str, int] = {}
    for line in (log_dir / "predictions.jsonl").read_text().splitlines():
        request_id = json.loads(line)["request_id"]  # every line parses: no partial line
        lines[request_id] = lines.get(request_id, 0) + 1
    for status, request_id in answers:
        expected = 200 if status == 200 else 0
        assert rows.get(request_id, 0) == expected, f"a {status} with {rows.get(request_id, 0)} rows"
        assert lines.get(request_id, 0) == expected, f"a {status} with {lines.get(request_id, 0)} lines"
