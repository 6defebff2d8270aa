"""One native thread per model call, set by the service itself whatever the environment says.

With OpenMP's default pool (one thread per core) in every worker, two workers on two cores spin
against each other at every parallel region: a few requests a second instead of hundreds.
threadpoolctl sets the BLAS pools for the process, but OpenMP's thread count is a
per-thread setting, so it is applied in every thread that runs a model: the loader, the event
loop and the thread that predicts large batches.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_info, threadpool_limits


def limit_native_threads() -> None:
    """Limit OpenMP and BLAS to one thread, for the calling thread (and BLAS process-wide)."""
    threadpool_limits(limits=1)


def native_threads() -> dict[str, int]:
    """The most threads each loaded native pool ("openmp", "blas") would use when called from this thread."""
    threads: dict[str, int] = {}
    for pool in threadpool_info():
        threads[pool["user_api"]] = max(threads.get(pool["user_api"], 0), pool["num_threads"])
    return threads


def model_executor() -> ThreadPoolExecutor:
    """The thread large batches are predicted in, limited like the event loop's."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict", initializer=limit_native_threads)
