"""The service limits OpenMP to one thread in each thread that runs a model, whatever the environment says.

OpenMP's thread count is per thread: a limit set in one thread does not reach the others, which is why
the service applies it in the loader, the event loop and the large-batch thread (bento_service/native_threads.py)."""

from __future__ import annotations

import os
import threading

import pytest
from threadpoolctl import threadpool_info

from bento_service.native_threads import limit_native_threads, model_executor


def _openmp_threads() -> list[int]:
    import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"]


def _in_new_thread(setup: bool) -> list[int]:
    result: list[int] = []

    def run() -> None:
        if setup:
            limit_native_threads()
        result.extend(_openmp_threads())
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result


def test_the_large_batch_thread_and_a_limited_thread_run_one_openmp_thread() -> None:
    assert _openmp_threads(), "scikit-learn's OpenMP runtime is not loaded"
    with model_executor() as executor:
        assert set(executor.submit(_openmp_threads).result()) == {1}
    assert set(_in_new_thread(setup=True)) == {1}


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or "OMP_NUM_THREADS" in os.environ,
                    reason="needs 2+ cores and OMP_NUM_THREADS unset to see OpenMP's default")
def test_without_the_limit_a_thread_gets_one_openmp_thread_per_core() -> None:
    """The control: what every model thread would run with if the service did not set the limit itself."""
    assert set(_in_new_thread(setup=False)) == {os.cpu_count()}
