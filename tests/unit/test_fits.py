"""stages/fits.py in process: a cluster that would change the bytes, or loses its workers, stops the stage with
one line. (The real cluster, and the unset path's imports: tests/pipeline/test_cluster.py.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from stages import fits


class FakeClient:
    """A Client whose one worker reports `settings` (what `compute_settings` found there)."""

    settings: ClassVar[dict[str, Any]] = {}
    closed = False

    def __init__(self, address: str, **kwargs: Any) -> None:
        self.address = address

    def run(self, function: Any) -> dict[str, dict[str, Any]]:
        return {"tcp://10.0.0.7:40211": FakeClient.settings}

    def close(self) -> None:
        FakeClient.closed = True


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    import distributed

    monkeypatch.setattr(distributed, "Client", FakeClient)
    fits._client.cache_clear()
    yield FakeClient
    fits._client.cache_clear()


def stage_settings() -> dict[str, Any]:
    return fits.compute_settings()() | dict.fromkeys(fits.THREAD_VARIABLES, "1")


def test_workers_computing_as_the_stage_does_are_used(fake_cluster: type[FakeClient]) -> None:
    fake_cluster.settings = stage_settings()
    assert isinstance(fits._client("tcp://scheduler:8786"), FakeClient)


@pytest.mark.parametrize(("setting", "value"), [("OMP_NUM_THREADS", None), ("domain code", "0" * 32),
                                                ("sklearn", "1.0.0"), ("OPENBLAS_CORETYPE", "SkylakeX")])
def test_a_worker_that_would_change_the_bytes_stops_the_stage(fake_cluster: type[FakeClient], setting: str,
                                                              value: Any) -> None:
    fake_cluster.settings = stage_settings() | {setting: value}
    with pytest.raises(SystemExit) as stopped:
        fits._client("tcp://scheduler:8786")
    message = str(stopped.value)
    assert "\n" not in message and "tcp://10.0.0.7:40211" in message and setting in message
    assert fits.DOCS in message and fake_cluster.closed


def test_workers_lost_for_good_stop_the_stage_with_one_line() -> None:
    from distributed import KilledWorker

    with pytest.raises(SystemExit) as stopped, fits._cluster_errors("tcp://scheduler:8786"):
        raise KilledWorker("batch_of__fit_and_score_1_calls-0", SimpleNamespace(address="tcp://10.0.0.7:40211"), 3)
    assert "\n" not in str(stopped.value) and "nothing was written" in str(stopped.value)


def test_no_scheduler_stops_the_stage_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fits, "CONNECT_SECONDS", 2)
    fits._client.cache_clear()
    with pytest.raises(SystemExit) as stopped:
        fits._client("tcp://127.0.0.1:9")  # discard port: nothing listens
    assert "no Dask scheduler answers" in str(stopped.value) and "\n" not in str(stopped.value)
    fits._client.cache_clear()


def test_unset_means_the_stages_own_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fits.ADDRESS, raising=False)
    assert fits.cluster_address() is None
    with fits.fold_parallelism("threading", ()):
        from joblib.parallel import get_active_backend

        backend, _ = get_active_backend()
        assert type(backend).__name__ == "ThreadingBackend"


def test_a_fit_whose_data_died_with_a_worker_stops_the_stage_with_one_line() -> None:
    from distributed.client import FutureCancelledError

    with pytest.raises(SystemExit) as stopped, fits._cluster_errors("tcp://scheduler:8786"):
        raise FutureCancelledError("batch_of__fit_and_score_1_calls-0", "already forgotten")
    message = str(stopped.value)
    assert "\n" not in message and "nothing was written" in message and "batch_of__fit_and_score" in message
