"""A stage process lives no longer than the `dvc` that runs it, and runs one native thread per pool.

`kill -9` of `dvc repro` leaves its stage running (DVC starts it through a shell, and nothing
signals either of them), and with it the stage's CV worker processes; the orphan then writes its
output over what the user restored and `dvc status` turns dirty. So a stage started by DVC (DVC_STAGE
is set) asks Linux for SIGKILL when its parent dies (PR_SET_PDEATHSIG) and, when that parent is
a shell that does not exec the command (dash), also watches the dvc process above it. The CV worker
processes (loky) get the same parent-death signal from `worker_initializer`.

Native thread pools (OpenMP, BLAS) are limited to one thread in every stage, whatever the
environment says: their threads spin-wait and thrash on shared cores (bench/NOTES.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from stages import failures

PR_SET_PDEATHSIG = 1
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "busybox"})
# Read by OpenMP and BLAS libraries when they load; threadpoolctl limits the ones already loaded.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start_stage() -> None:
    """First thing in every stage's main(): tie the process to dvc, one native thread per pool, and a full disk
    reported in one line (stages/failures.py)."""
    failures.install()
    if os.environ.get("DVC_STAGE"):
        parent = os.getppid()
        die_with_parent()
        runner = _runner(parent)
        if runner is not None and runner != parent:
            _watch(runner)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent (`parent`, by default the current one) dies; at once if it
    already has (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid() if parent is None else parent
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def worker_initializer(stage: int) -> None:
    """Run in each loky worker process as it starts: die with `stage`, the process that started it (which
    may already be gone: a worker takes a second to start)."""
    die_with_parent(stage)


@contextlib.contextmanager
def fold_parallelism(backend: str) -> Iterator[None]:
    """joblib's backend for CV folds. Worker processes (loky) die with the stage and run their native pools with
    one thread, as the stage does: a pool's size changes the order in which HistGradientBoosting sums gradients,
    so scores would differ in their last digits between machines with different core counts."""
    from joblib import parallel_config

    options = ({"initializer": worker_initializer, "initargs": (os.getpid(),), "inner_max_num_threads": 1}
               if backend == "loky" else {})
    with parallel_config(backend=backend, **options):
        yield


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; empty if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _runner(parent: int) -> int | None:
    """The nearest ancestor that is not a shell: the dvc process (None if it is init)."""
    pid: int | None = parent
    while pid is not None and pid > 1 and _comm(pid) in SHELLS:
        pid = _parent_of(pid)
    return pid if pid is not None and pid > 1 else None


def _watch(pid: int) -> None:
    """A daemon thread that SIGKILLs this process as soon as `pid` exits."""
    def wait_then_die() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):  # no pidfd: poll until it is gone or a zombie
            while _stat(pid)[:1] not in ([], ["Z"]):
                time.sleep(0.2)
        else:
            select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=wait_then_die, name="dvc-watch", daemon=True).start()
