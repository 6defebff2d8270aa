"""Demo traffic: every declared task's test split sent to a running server at a steady rate, true values as feedback.

    python -m monitoring.demo [--url http://127.0.0.1:3000] [--rate 10] [--duration 60] [--task TASK ...]

What a new user lacks after the quickstart is traffic: `make report`, `make monitor` (300 predictions at least)
and the dashboard have nothing to show. This sends each task's held-out records (`data/prepared/<task>/test.csv`,
written by stage `preprocess`; the rows cycle when the split is shorter than the run) one request at a time,
`--rate` requests per second per task on a fixed schedule (a slow answer delays the next, it is not made up
with a burst), and after each answer the record's true value to `POST /<task>/feedback`, so the champion and
challenger comparison has feedback too. It sends exactly the fields the declaration names: a missing optional
value is left out, as a client would. API_KEY (the server's setting) goes in X-API-Key when set.

Exit codes: 0 every request answered, 1 some were refused (the first refusal is printed), 2 no server at the
URL, no test split, or bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from domain.schema import CategoryField, DeclarationError, TaskSchema, load_schema
from domain.tasks import selected
from monitoring.cli import declared_task

EXIT_OK, EXIT_REFUSED, EXIT_PROBLEM = 0, 1, 2
PROGRESS_EVERY_S = 10.0


class DemoProblem(Exception):
    """Something the user must fix before any traffic can be sent; the message says what."""


def test_split(task: str) -> Path:
    """The held-out records stage `preprocess` writes (dvc.yaml `preprocess` outs)."""
    return Path("data") / "prepared" / task / "test.csv"


def _value(raw: str, spec) -> object | None:
    """A CSV cell as the client would send it: None for a missing value, a float for a number."""
    if raw == "":
        return None
    return raw if isinstance(spec, CategoryField) else float(raw)


def records(schema: TaskSchema, path: Path) -> list[tuple[dict[str, object], object]]:
    """(request body, true value) for every row of the split, the body holding the fields that have a value."""
    if not path.is_file():
        raise DemoProblem(f"{path}: no test split for {schema.task}: run the pipeline first (make run)")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        body = {spec.name: value for spec in schema.features
                if (value := _value(row.get(spec.name, ""), spec)) is not None}
        actual = _value(row[schema.target.name], schema.target)
        out.append((body, actual))
    if not out:
        raise DemoProblem(f"{path}: the test split is empty")
    return out


@dataclass
class Tally:
    """What one task's traffic got back."""

    predicted: int = 0
    feedback: int = 0
    refused: int = 0
    first_refusal: str = ""

    def refuse(self, what: str, status: int, body: bytes) -> None:
        self.refused += 1
        if not self.first_refusal:
            self.first_refusal = f"{what}: HTTP {status} {body[:300].decode('utf-8', 'replace')}"


@dataclass
class Client:
    """One keep-alive connection to the server; reconnects once when the server closed it."""

    url: str
    api_key: str | None = None
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            parts = urlsplit(self.url)
            if parts.scheme != "http" or not parts.hostname:
                raise DemoProblem(f"--url {self.url}: an http://host:port URL is needed")
            self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        return self._conn

    def post(self, path: str, body: dict) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        payload = json.dumps(body).encode()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", path, payload, headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise
            except OSError as exc:
                raise DemoProblem(f"no server answers at {self.url} ({exc.strerror or exc}): start one with "
                                  "`make serve` in another shell, or pass --url") from None
        raise AssertionError("unreachable")


def send_one(client: Client, schema: TaskSchema, body: dict, actual: object, tally: Tally) -> None:
    """One prediction, then its true value as feedback."""
    status, answer = client.post(f"/{schema.task}/predict", body)
    if status != 200:
        tally.refuse(f"POST /{schema.task}/predict", status, answer)
        return
    tally.predicted += 1
    request_id = json.loads(answer)["request_id"]
    status, answer = client.post(f"/{schema.task}/feedback",
                                 {"request_id": request_id, "actual": actual, "position": 0})
    if status != 200:
        tally.refuse(f"POST /{schema.task}/feedback", status, answer)
        return
    tally.feedback += 1


def schedule(start: float, rate: float, duration: float, tasks: list[str]) -> Iterator[tuple[float, int, str]]:
    """(due time, index, task): each task `rate` times a second, the tasks spread evenly over each interval."""
    interval = 1.0 / rate
    count = math.floor(duration * rate)
    for index in range(count):
        for offset, task in enumerate(tasks):
            yield start + (index + offset / len(tasks)) * interval, index, task


def run(url: str, tasks: list[str], rate: float, duration: float, out=sys.stdout) -> int:
    schemas = {task: load_schema(task) for task in tasks}
    data = {task: records(schema, test_split(task)) for task, schema in schemas.items()}
    client = Client(url, os.environ.get("API_KEY") or None)
    tallies = {task: Tally() for task in tasks}
    start = time.monotonic()
    next_report = start + PROGRESS_EVERY_S
    print(f"demo: {', '.join(f'{t} ({len(data[t])} test records)' for t in tasks)} to {url}, "
          f"{rate:g} requests/s per task for {duration:g} s", file=out, flush=True)
    for due, index, task in schedule(start, rate, duration, tasks):
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        body, actual = data[task][index % len(data[task])]
        send_one(client, schemas[task], body, actual, tallies[task])
        if time.monotonic() >= next_report:
            print(f"demo: {time.monotonic() - start:.0f} s: {_summary(tallies)}", file=out, flush=True)
            next_report += PROGRESS_EVERY_S
    print(f"demo: done: {_summary(tallies)}", file=out)
    refused = {task: t for task, t in tallies.items() if t.refused}
    for task, tally in refused.items():
        print(f"demo: {task}: {tally.refused} refused, the first: {tally.first_refusal}", file=out)
    if not refused:
        print("demo: now `make report`, and `make monitor TASK=<task>` for drift and champion vs challenger",
              file=out)
    return EXIT_REFUSED if refused else EXIT_OK


def _summary(tallies: dict[str, Tally]) -> str:
    return "; ".join(f"{task} {t.predicted} predictions, {t.feedback} feedback" for task, t in tallies.items())


def positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"a positive number is needed, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the running server")
    parser.add_argument("--rate", type=positive, default=10.0, help="requests per second per task")
    parser.add_argument("--duration", type=positive, default=60.0, help="seconds to send for")
    parser.add_argument("--task", type=declared_task, action="append",
                        help="a declared task (repeatable); default: every task")
    args = parser.parse_args(argv)
    try:
        tasks = args.task or selected()
        return run(args.url, tasks, args.rate, args.duration)
    except (DemoProblem, DeclarationError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
