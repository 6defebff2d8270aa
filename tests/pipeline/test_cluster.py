"""The candidates' folds and search trials on a real Dask cluster give a local run's bytes.

A scheduler and two single-threaded workers run on loopback from the project's virtualenv, as docs/cluster.md
starts them. The same small pipeline is reproduced (through evaluate) twice in real DVC repositories, at once, once with
DASK_SCHEDULER_ADDRESS pointing at the scheduler: dvc.lock, every metrics file and every model file must be the
same bytes, the scheduler's task stream must show the fits on the workers and nothing else (no fit sends nested
tasks of its own), and each train stage must have sent its training data to the workers once. Unset, a stage
never imports `distributed`.

A worker killed (SIGKILL) while it holds a fit: the scheduler runs that fit again on a worker that lives, or the
stage stops with one line, and `dvc repro` then writes the local run's bytes; workers killed again and again stop
the stage with one line and leave no output behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.dask_cluster import local_cluster
from stages.fits import ADDRESS
from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo, project_fast_params, ran_stages

WORKERS = 2
# Every stage that fits runs before evaluate, and evaluate writes the metrics: later stages only read them.
THROUGH = ("evaluate",)
# One candidate per way its folds run locally: threads (forest: nested joblib too), processes and a search (hgb),
# a search in threads (logreg); and a second one for iris to choose from.
CANDIDATES = ("housing-forest", "housing-hgb", "iris-logreg", "iris-lda")
FIT_TASK = "_fit_and_score"  # scikit-learn's one CV fit; joblib's Dask backend names each task after its function
# A forest big enough that each fold's fit takes seconds on the small data: time to kill the worker holding one.
SLOW_CANDIDATE, SLOW_TREES = "housing-forest", 3000
SLOW_STAGE = f"train@{SLOW_CANDIDATE}"


def worker_env() -> dict[str, str]:
    """What docs/cluster.md gives a worker: the repository's `domain` importable, the stages' CPU-dispatch pins
    (the thread variables are set to 1 by Dask's nanny itself)."""
    import stages  # noqa: F401  (sets the pins in this process, as in every stage)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "DASK_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker --nthreads 1` processes; every one stopped afterwards."""
    with local_cluster(WORKERS, tmp_path_factory.mktemp("dask"), worker_env()) as address:
        yield address


def outputs(repo: PipelineRepo) -> dict[str, bytes]:
    """dvc.lock, metrics/ and models/ as bytes (less the git-ignored MLflow run ids, which differ per machine)."""
    models = sorted(path for path in (repo.path / "models").rglob("*") if path.name != "mlflow.json")
    files = [repo.path / "dvc.lock", *sorted((repo.path / "metrics").rglob("*")), *models]
    return {str(path.relative_to(repo.path)): path.read_bytes() for path in files if path.is_file()}


def cluster_record(address: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The scheduler's task stream, and the keys each worker received by scatter."""
    from distributed import Client

    def scattered(dask_worker: Any) -> list[str]:
        return [str(event[0]) for event in dask_worker.state.log if "receive-from-scatter" in event]

    with Client(address, timeout=30) as client:
        return client.get_task_stream(), client.run(scattered)


@pytest.fixture(scope="module")
def runs(cluster: str, small_housing_csv: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[PipelineRepo, PipelineRepo, str, float]:
    """The same pipeline reproduced locally and on the cluster, at once: (local, cluster, its output, start)."""
    root = tmp_path_factory.mktemp("runs")
    params = project_fast_params()
    params["candidates"] = {name: spec for name, spec in params["candidates"].items() if name in CANDIDATES}
    local, remote = (PipelineRepo.create(root / name / "repo", small_housing_csv, params=params,
                                         bentoml_home=root / name / "bentoml-home")
                     for name in ("local", "cluster"))
    started = time.time()
    on_cluster = subprocess.Popen(["dvc", "repro", *THROUGH], cwd=remote.path, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=remote_env(remote, cluster))
    local_output = local.repro(*THROUGH).output
    cluster_output, _ = on_cluster.communicate(timeout=600)
    assert on_cluster.returncode == 0, cluster_output[-4000:]
    assert ran_stages(cluster_output) == ran_stages(local_output)
    return local, remote, cluster_output, started


def test_a_cluster_run_gives_the_local_runs_bytes(runs: tuple[PipelineRepo, PipelineRepo, str, float],
                                                  cluster: str) -> None:
    local, remote, cluster_output, started = runs
    mine, theirs = outputs(local), outputs(remote)
    assert sorted(mine) == sorted(theirs)
    differing = [name for name in mine if mine[name] != theirs[name]]
    assert not differing, f"a cluster run wrote other bytes: {differing}"

    stream, scattered = cluster_record(cluster)
    ours = [task for task in stream if task["startstops"][0]["start"] >= started]
    fits = [task for task in ours if FIT_TASK in task["key"]]
    # nothing but the stages' own folds and trials: a fold's vote fits its members in the fold, not as tasks
    assert {task["key"] for task in ours if FIT_TASK not in task["key"]} == set()
    train_stages = [stage for stage in ran_stages(cluster_output) if stage.startswith("train@")]
    assert len(train_stages) == len(CANDIDATES)
    folds = local.params()["cv"]["folds"]
    assert len(fits) >= folds * len(train_stages), f"{len(fits)} fits on the cluster"
    assert len({task["worker"] for task in fits}) == WORKERS, "the fits did not spread over both workers"
    for worker, keys in scattered.items():  # X (a DataFrame) once per train stage, not once per fit
        frames = [key for key in keys if key.startswith("DataFrame-")]
        assert 0 < len(frames) <= len(train_stages), f"{worker} received the training data {len(frames)} times"


def remote_env(repo: PipelineRepo, address: str) -> dict[str, str]:
    from tests.support.dvc_repo import venv_env

    env = venv_env(HOUSING_CSV=str(repo.housing_csv), BENTOML_HOME=str(repo.bentoml_home))
    env[ADDRESS] = address
    return env


def test_unset_the_stage_never_imports_distributed(runs: tuple[PipelineRepo, PipelineRepo, str, float]) -> None:
    """A searched candidate whose folds run in processes (the widest local path): no `distributed`, no `dask`."""
    repo = runs[0]
    probe = ("import runpy, sys\n"
             "sys.argv = ['stages.train', 'housing', 'housing-hgb']\n"
             "runpy.run_module('stages.train', run_name='__main__')\n"
             "print(sorted(name for name in sys.modules if name.split('.')[0] in ('distributed', 'dask')))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "DASK_"))}
    env["PYTHONPATH"] = str(repo.path)
    result = subprocess.run([sys.executable, "-c", probe], cwd=repo.path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def slow_fits(small_housing_csv: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[PipelineRepo, dict[str, bytes]]:
    """A repository whose forest's folds take seconds, its stage reproduced locally: (repo, its output bytes)."""
    params = project_fast_params()
    params["candidates"] = {name: spec for name, spec in params["candidates"].items() if name in CANDIDATES}
    params["candidates"][SLOW_CANDIDATE]["hyperparams"]["n_estimators"] = SLOW_TREES
    root = tmp_path_factory.mktemp("slow")
    repo = PipelineRepo.create(root / "repo", small_housing_csv, params=params, bentoml_home=root / "bentoml-home")
    repo.repro(SLOW_STAGE)
    return repo, outputs(repo)


def kill_workers_mid_fit(address: str, stage: subprocess.Popen[str], times: int) -> list[str]:
    """SIGKILL the process of a worker seen holding a task while `stage` runs, up to `times` times (a worker's
    nanny starts a new process, maybe at the same address): the killed workers' addresses."""
    from distributed import Client

    killed: dict[int, str] = {}  # pid -> address
    with Client(address, timeout=30) as client:
        while stage.poll() is None and len(killed) < times:
            holding = [worker for worker, keys in client.processing().items() if keys]
            pids = client.run(os.getpid, workers=holding, on_error="ignore") if holding else {}
            for worker, pid in pids.items():  # a worker that just died or finished answers nothing
                if pid not in killed and len(killed) < times:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed[pid] = worker
            time.sleep(0.05)
    assert killed, f"the stage ended before any task reached a worker: {stage.communicate()[0][-3000:]}"
    return list(killed.values())


def reproduce_killing_workers(repo: PipelineRepo, times: int) -> tuple[int, str, list[str]]:
    """`dvc repro -f -s` of the slow stage on a fresh cluster, killing a worker mid-fit `times` times:
    (exit code, output, the killed workers' addresses)."""
    with local_cluster(WORKERS, repo.path.parent, worker_env()) as address:
        stage = subprocess.Popen(["dvc", "repro", "-f", "-s", SLOW_STAGE], cwd=repo.path, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=remote_env(repo, address))
        try:
            killed = kill_workers_mid_fit(address, stage, times)
            output, _ = stage.communicate(timeout=600)
        finally:
            if stage.poll() is None:
                stage.kill()
    return stage.returncode, output, killed


def test_a_worker_killed_mid_fit_costs_a_rerun_not_bytes(slow_fits: tuple[PipelineRepo, dict[str, bytes]]) -> None:
    """The scheduler re-runs the lost worker's fits, or (their row indices lost with it) the stage stops with one
    line and nothing written; either way a `dvc repro` gives the local run's bytes."""
    repo, local_bytes = slow_fits
    code, output, killed = reproduce_killing_workers(repo, times=1)
    assert len(killed) == 1 and "Traceback" not in output, output[-4000:]
    if code != 0:
        stop = [line for line in output.splitlines() if line.startswith(f"{ADDRESS}=")]
        assert len(stop) == 1 and "nothing was written" in stop[0], output[-4000:]
        assert not (repo.path / "models/housing/candidates" / SLOW_CANDIDATE / "model.joblib").exists()
        with local_cluster(WORKERS, repo.path.parent, worker_env()) as address:
            result = subprocess.run(["dvc", "repro", SLOW_STAGE], cwd=repo.path, text=True, capture_output=True,
                                    env=remote_env(repo, address), timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert outputs(repo) == local_bytes


def test_workers_killed_again_and_again_fail_the_stage_with_one_line(
        slow_fits: tuple[PipelineRepo, dict[str, bytes]]) -> None:
    """Every worker that holds a task killed: the stage stops with one line, whichever way it learns."""
    repo, local_bytes = slow_fits
    code, output, killed = reproduce_killing_workers(repo, times=1000)
    assert code != 0 and killed, (killed, output[-3000:])
    assert "Traceback" not in output, output[-4000:]
    stop = [line for line in output.splitlines() if line.startswith(f"{ADDRESS}=")]
    assert len(stop) == 1 and "nothing was written" in stop[0], output[-4000:]
    stage_outputs = [name for name in local_bytes if name.startswith(f"models/housing/candidates/{SLOW_CANDIDATE}/")]
    assert stage_outputs, "the local run wrote no model for the slow candidate"
    left = [name for name in stage_outputs if (repo.path / name).exists()]
    assert not left, f"a failed stage left outputs behind: {left}"
    assert (repo.path / "dvc.lock").read_bytes() == local_bytes["dvc.lock"]
