"""Closed-loop HTTP load from a separate process: wrk when installed, else an asyncio client.

Both keep N HTTP/1.1 keep-alive connections busy, each sending its next request as soon as the
previous answer arrives, and report throughput, latency percentiles and non-2xx answers. The load
generator runs on the same two cores as the server it measures: its CPU time is reported so the
reader can see how much of the machine it took (wrk: a few percent of a core; the asyncio client:
much more, which is why wrk is preferred).
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

LUA_SCRIPT = Path(__file__).with_name("post.lua")


@dataclass
class LoadResult:
    tool: str
    connections: int
    duration_s: float
    requests: int
    ok: int                 # 2xx answers
    non_2xx: int
    socket_errors: int      # connect/read/write errors and timeouts
    rps: float              # 2xx answers per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    client_cpu_s: float     # CPU time of the load generator itself

    def as_dict(self) -> dict:
        return asdict(self)


def available_tool(preferred: str = "auto") -> str:
    """'wrk' if requested or installed (auto), else 'asyncio'."""
    if preferred == "asyncio":
        return "asyncio"
    if shutil.which("wrk"):
        return "wrk"
    if preferred == "wrk":
        raise RuntimeError("wrk requested but not installed (apt-get install wrk)")
    return "asyncio"


def run_load(url: str, bodies: list[bytes], connections: int, duration_s: float, tool: str = "auto") -> LoadResult:
    """POST the bodies (cycled) to url over `connections` connections for `duration_s` seconds."""
    if available_tool(tool) == "wrk":
        return _run_wrk(url, bodies, connections, duration_s)
    return _run_asyncio(url, bodies, connections, duration_s)


# -- wrk -------------------------------------------------------------------------------------

def _run_wrk(url: str, bodies: list[bytes], connections: int, duration_s: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as handle:
        handle.write(b"\n".join(bodies) + b"\n")
        bodies_file = handle.name
    # One wrk thread: enough for tens of thousands of requests per second, and it leaves the
    # second core to the servers. --timeout well above any latency so slow answers are counted.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "30s",
               "-s", str(LUA_SCRIPT), url, "--", bodies_file]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    finally:
        Path(bodies_file).unlink(missing_ok=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    duration = raw["duration_us"] / 1e6
    # wrk's `status` error counter counts answers with status > 399; no 1xx/3xx are expected here.
    non_2xx = raw["status"]
    ok = raw["requests"] - non_2xx
    return LoadResult(
        tool="wrk", connections=connections, duration_s=round(duration, 3), requests=raw["requests"], ok=ok,
        non_2xx=non_2xx, socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        rps=ok / duration, p50_ms=raw["p50_us"] / 1000, p95_ms=raw["p95_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000, max_ms=raw["max_us"] / 1000,
        client_cpu_s=round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3),
    )


# -- asyncio client --------------------------------------------------------------------------

def _run_asyncio(url: str, bodies: list[bytes], connections: int, duration_s: float) -> LoadResult:
    before = resource.getrusage(resource.RUSAGE_SELF)
    latencies, statuses, errors, elapsed = asyncio.run(_asyncio_load(url, bodies, connections, duration_s))
    after = resource.getrusage(resource.RUSAGE_SELF)
    ok = sum(1 for s in statuses if 200 <= s < 300)
    lat = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return LoadResult(
        tool="asyncio", connections=connections, duration_s=round(elapsed, 3), requests=len(statuses), ok=ok,
        non_2xx=len(statuses) - ok, socket_errors=errors, rps=ok / elapsed,
        p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)), mean_ms=float(np.mean(lat)), max_ms=float(np.max(lat)),
        client_cpu_s=round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3),
    )


async def _asyncio_load(url: str, bodies: list[bytes], connections: int,
                        duration_s: float) -> tuple[list[float], list[int], int, float]:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    requests = [(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body for body in bodies]
    latencies: list[float] = []
    statuses: list[int] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + duration_s

    async def connection(offset: int) -> None:
        nonlocal errors
        i = offset
        reader = writer = None
        while time.perf_counter() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                sent = time.perf_counter()
                writer.write(requests[i % len(requests)])
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - sent)
                statuses.append(status)
                i += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection(k * 7) for k in range(connections)))
    return latencies, statuses, errors, time.perf_counter() - started


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Status of one HTTP/1.1 response with a Content-Length body (what every server here sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status
