"""Per-worker gauges on /metrics follow the live workers: readiness per worker, nothing left of a killed one.

prometheus_client keeps a process's live-mode gauges (readiness, drift scores) until someone marks the
process dead, which BentoML does only on a clean exit; bento_service/metrics.py drops a killed worker's
when its replacement starts. Without that, a worker killed while loading would hold the not-ready alert
on for good.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx

from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer

READY = re.compile(r'^prediction_worker_ready\{pid="(\d+)"\} (\S+)$', re.MULTILINE)


def readiness(live: LiveServer) -> dict[int, float]:
    return {int(pid): float(value) for pid, value in READY.findall(httpx.get(f"{live.url}/metrics").text)}


def wait_for(live: LiveServer, what: str, condition, timeout: float = 180) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = readiness(live)
        if condition(state):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"{what}: {readiness(live)}\n{live.log_text()[-2000:]}")


def test_a_killed_workers_readiness_leaves_metrics_when_it_is_replaced(built_repo: PipelineRepo,
                                                                       tmp_path: Path) -> None:
    live = LiveServer("bento_service.service:PredictionService", tmp_path / "logs", env={"WORKERS": "2"})
    try:
        live.wait_ready()
        ready = wait_for(live, "both workers ready", lambda s: len(s) == 2 and set(s.values()) == {1.0})
        workers = {p.pid for p in live.processes()[1:]}
        assert set(ready) <= workers, (ready, workers)  # one series per live worker process

        victim = min(ready)
        os.kill(victim, signal.SIGKILL)
        after = wait_for(live, "the replacement ready and the killed worker gone",
                         lambda s: len(s) == 2 and victim not in s and set(s.values()) == {1.0})
        assert set(after) - set(ready) and set(after) <= {p.pid for p in live.processes()[1:]}
    finally:
        live.stop()
