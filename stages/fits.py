"""Where a stage's cross-validation folds and search trials run: the stage's own pools, or a Dask cluster.

With Dask's own setting DASK_SCHEDULER_ADDRESS unset, folds run in the stage's threads or processes
(candidates.fold_backend, lifetime.fold_parallelism) and `distributed` is never imported. Set, every fold and
trial goes to that scheduler's workers through joblib's Dask backend, the one scikit-learn documents: the same
estimators and the same calls, so a model has one code path wherever its folds run. The training data goes to
every worker once per stage (scattered), not once per fit. The model a stage writes is always fitted in the stage.

A fold's scores are the same bytes on a worker as in the stage only if the worker computes as the stage does:
one native thread per pool, the CPU-dispatch pins of stages/__init__.py, the same libraries and the same
`domain` code (the model classes a fit runs). The stage checks that before its first fit and stops with one line
naming what differs. A worker lost mid-fit: the scheduler re-runs its fits on another one (Dask's
`distributed.scheduler.allowed-failures`); past that the stage stops with one line, having written nothing.
When the lost worker held data that exists nowhere else (joblib sends each fit's row indices to one worker only),
the scheduler cancels the fits that need it (dask/distributed#3149): the stage stops with one line, having written
nothing, and `dvc repro` runs it again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any

from stages.lifetime import THREAD_VARIABLES
from stages.lifetime import fold_parallelism as local_parallelism

ADDRESS = "DASK_SCHEDULER_ADDRESS"
CPU_PINS = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")  # stages/__init__.py
CONNECT_SECONDS = 30
DOCS = "docs/cluster.md"
# The training data whose cluster context is open (ids of X, y): a nested call reuses its scatter.
_SCATTERED: list[tuple[int, ...]] = []


def cluster_address() -> str | None:
    """The Dask scheduler the folds go to, or None: run them in the stage."""
    return os.environ.get(ADDRESS) or None


@contextlib.contextmanager
def fold_parallelism(backend: str, data: Sequence[Any]) -> Iterator[None]:
    """Run the joblib calls inside (scikit-learn's CV folds and search trials over `data`, the training X and y)
    in the stage's `backend` ("threading" or "loky"), or on the Dask cluster when one is set.

    On the cluster, `data` is scattered to every worker when the outermost context for it opens; a context
    nested inside it for the same objects (a search's follow-up CV) runs in the open one instead of scattering
    again."""
    address = cluster_address()
    if address is None:
        with local_parallelism(backend):
            yield
        return
    key = tuple(id(part) for part in data)
    if key in _SCATTERED:
        yield
        return
    from joblib import parallel_config

    _SCATTERED.append(key)
    try:
        with _cluster_errors(address), parallel_config(backend="dask", client=_client(address), scatter=list(data)):
            yield
    finally:
        _SCATTERED.remove(key)


@cache
def _client(address: str) -> Any:
    """A client of the scheduler at `address`, once its workers are checked to compute as this stage does."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except OSError as exc:
        raise SystemExit(f"{ADDRESS}={address}: no Dask scheduler answers ({exc}); unset it to fit here") from None
    check = compute_settings()
    local = check() | {name: "1" for name in THREAD_VARIABLES}  # whatever the stage's own environment says
    differences = sorted({f"{worker}: {difference}" for worker, settings in client.run(check).items()
                          for difference in differ(local, settings)})
    if differences:
        client.close()
        raise SystemExit(f"{ADDRESS}={address}: the workers would not give this stage's bytes "
                         f"({'; '.join(differences)}); see {DOCS}")
    return client


@contextlib.contextmanager
def _cluster_errors(address: str) -> Iterator[None]:
    """A worker or scheduler lost for good: one line instead of a traceback from inside joblib."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    try:
        yield
    except FutureCancelledError as exc:
        raise SystemExit(f"{ADDRESS}={address}: a worker died holding data of fit {exc.key}, which the scheduler "
                         "cannot recompute; nothing was written: run the stage again") from None
    except KilledWorker as exc:
        deaths = exc.allowed_failures + 1
        raise SystemExit(f"{ADDRESS}={address}: {deaths} worker{'s' if deaths > 1 else ''} died running fit "
                         f"{exc.task} (the last: {exc.last_worker.address}); nothing was written") from None
    except OSError as exc:  # CommClosedError: the scheduler went away
        raise SystemExit(f"{ADDRESS}={address}: lost the Dask scheduler ({exc}); nothing was written") from None


def differ(local: dict[str, Any], worker: dict[str, Any]) -> list[str]:
    """What a worker's `compute_settings` has that the stage's has not: "<setting> <worker's> (stage: <stage's>)"."""
    return [f"{name} {worker.get(name)!r} (stage: {value!r})" for name, value in local.items()
            if worker.get(name) != value]


def compute_settings() -> Callable[[], dict[str, Any]]:
    """A function that reports what decides a fit's bytes in the process it runs in (a worker, or the stage).

    Built here so that it travels by value (it needs nothing of ours on the worker, and reports a missing
    `domain` rather than failing to arrive)."""
    names = (*THREAD_VARIABLES, *CPU_PINS)

    def settings() -> dict[str, Any]:
        import hashlib
        import importlib
        import importlib.util
        import os
        from pathlib import Path

        found: dict[str, Any] = {name: os.environ.get(name) for name in names}
        for library in ("numpy", "scipy", "sklearn", "pandas", "joblib"):
            found[library] = importlib.import_module(library).__version__
        spec = importlib.util.find_spec("domain")
        digest = hashlib.md5()
        if spec is not None and spec.submodule_search_locations:
            for path in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py")):
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
            found["domain code"] = digest.hexdigest()
        else:
            found["domain code"] = None
        return found

    return settings
