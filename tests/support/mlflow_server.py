"""A real `mlflow server` on a free 127.0.0.1 port, as a team would run it: a database backend store and
proxied artifacts (`--artifacts-destination`: clients upload and download through the server over HTTP,
so they need no storage credentials)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.server_process import ServerProcess, free_port

MLFLOW = Path(sys.executable).parent / "mlflow"


@contextmanager
def mlflow_server(backend_store_uri: str, directory: Path, timeout: float = 180) -> Iterator[str]:
    """Run the server for the `with` block (stopped with its workers even when the block fails); yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{MLFLOW.parent}{os.pathsep}{env.get('PATH', '')}"  # it starts uvicorn through PATH
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job runner: nothing here submits jobs
    server = ServerProcess(
        [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(directory / "artifacts")],
        cwd=directory, env=env, output=directory / "mlflow-server.log", ready_url=f"http://127.0.0.1:{port}/health")
    try:
        server.wait_ready(timeout=timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
