"""A Dask cluster on loopback for tests and benchmarks: a scheduler and N single-threaded workers, all stopped after.

Started as docs/cluster.md starts one (`dask scheduler`, `dask worker --nthreads 1 --no-dashboard`) from the
virtualenv running this, with the caller's environment (the CPU-dispatch pins, PYTHONPATH naming the code the
fits import). The scheduler records its task stream from the start, so a caller can see which worker ran what.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from scripts.server_process import free_port

DASK = Path(sys.executable).parent / "dask"


@contextmanager
def local_cluster(workers: int, workdir: Path, env: Mapping[str, str], ready_s: float = 120) -> Iterator[str]:
    """The scheduler's address (tcp://127.0.0.1:PORT) once `workers` workers have joined it."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    common = {"cwd": workdir, "env": dict(env), "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], **common)]
    try:
        processes += [subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--no-dashboard",
                                        "--host", "127.0.0.1", "--name", f"worker-{i}", "--local-directory",
                                        str(workdir)], **common) for i in range(workers)]
        with Client(address, timeout=ready_s) as client:
            client.wait_for_workers(workers, timeout=ready_s)
            client.get_task_stream()  # the scheduler records a task stream from now on
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
