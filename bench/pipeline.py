"""Pipeline timings: full `dvc repro` from a clean copy, no-op repro, one-candidate param changes.

Everything runs in scratch copies of the project (its tracked and untracked-but-not-ignored
files, `git init`ed), never in the repository itself: the repository's params.yaml, dvc.lock,
MLflow database and BentoML store are not touched. The per-stage split comes from the time at
which DVC prints each `Running stage` line (so a stage's time includes DVC's own hashing and
lock writing after it); the peak RSS of each stage's process tree is sampled every 0.1 s.

The machine is shared, so every measurement is repeated (full repro from a new copy each round,
one-candidate changes to distinct values so DVC's run-cache cannot answer) and reported as a
median, with the CPU time of the whole process tree beside the wall time: CPU time barely moves
when other jobs compete for the cores, wall time does, and the load average says how much.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

VENV_BIN = Path(sys.executable).parent
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")
UP_TO_DATE = "Data and pipelines are up to date"
# A cheap candidate: the target is what a user waits for after touching one candidate's params.
DEFAULT_CHANGE = ("housing", "housing-tree", "max_depth")


def dvc_env(bentoml_home: Path | None, housing_csv: Path | None) -> dict[str, str]:
    """The environment of a `dvc repro`: the virtualenv first on PATH, a private BentoML store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update({"PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1",
                "BENTOML_DO_NOT_TRACK": "true",
                "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})
    if bentoml_home is not None:
        env["BENTOML_HOME"] = str(bentoml_home)
    if housing_csv is not None:
        env["HOUSING_CSV"] = str(housing_csv)
    return env


def scratch_copy(code_root: Path, dest: Path, revision: str | None = None) -> Path:
    """The project's source files (no data, models, MLflow store or caches) in a fresh git repo: the working
    tree's tracked and untracked-but-not-ignored files, or the files of a git `revision` (a peer to compare)."""
    dest.mkdir(parents=True)
    if revision is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=code_root, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=code_root, capture_output=True, check=True).stdout.decode().split("\0")
        for name in filter(None, listed):
            source = code_root / name
            if source.is_file():  # skips files deleted in the working tree
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    env = dvc_env(None, None)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench scratch copy"]):
        subprocess.run(command, cwd=dest, env=env, check=True, capture_output=True)
    return dest


class _TreeSampler(threading.Thread):
    """Samples the RSS and CPU time of a process's descendants (the running stage) every 0.1 s.

    A descendant's own CPU time counts for the stage running when it was first seen; what it spends in its last
    0.1 s, and a process that lives less than that, are missed."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.stage = "(dvc start)"
        self.peak_mb: dict[str, float] = {}
        self.dvc_peak_mb = 0.0
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (stage, CPU seconds last seen)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.dvc_peak_mb = max(self.dvc_peak_mb, self.root.memory_info().rss / 2**20)
                total = 0.0
                for child in self.root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss / 2**20
                        times = child.cpu_times()
                        # its own time only: its children are sampled as processes of their own
                        seen = times.user + times.system
                        self.cpu[child.pid] = (self.cpu.get(child.pid, (self.stage, 0.0))[0], seen)
                self.peak_mb[self.stage] = max(self.peak_mb.get(self.stage, 0.0), total)
            except psutil.Error:
                return
            self.stopped.wait(0.1)

    def cpu_s(self, stage: str) -> float:
        return sum(seconds for name, seconds in self.cpu.values() if name == stage)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def timed_repro(work: Path, env: dict[str, str], args: list[str] | None = None) -> dict[str, Any]:
    """Run `dvc repro [args]`: wall and CPU time, load average before it, the per-stage split and peak RSS.

    CPU time is user + system of DVC and every process it waited for (stages, their workers), from
    the kernel's accounting of reaped children.
    """
    command = [str(VENV_BIN / "dvc"), "repro", *(args or [])]
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    sampler = _TreeSampler(process.pid)
    sampler.start()
    marks: list[tuple[str, float]] = []
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        match = STAGE_LINE.match(line)
        if match:
            marks.append((match.group(1), time.perf_counter() - started))
            sampler.stage = match.group(1)
    returncode = process.wait()
    wall = time.perf_counter() - started
    cpu = _children_cpu_s() - cpu_before
    sampler.stopped.set()
    sampler.join()
    text = "".join(output)
    if returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({returncode}):\n{text[-4000:]}")
    stages = []
    for i, (stage, at) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else wall
        stages.append({"stage": stage, "seconds": round(end - at, 2), "cpu_s": round(sampler.cpu_s(stage), 2),
                       "peak_rss_mb": round(sampler.peak_mb.get(stage, 0.0), 1)})
    return {"command": " ".join(["dvc", "repro", *(args or [])]), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "load_average_before": round(load_before, 2),
            "before_first_stage_s": round(marks[0][1], 2) if marks else round(wall, 2), "stages": stages,
            "dvc_peak_rss_mb": round(sampler.dvc_peak_mb, 1), "up_to_date": UP_TO_DATE in text,
            "cached_stages": text.count("is cached - skipping run")}


def set_param(params_file: Path, candidate: str, key: str, value: Any) -> None:
    params = yaml.safe_load(params_file.read_text())
    params["candidates"][candidate]["hyperparams"][key] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def noop_repro(work: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    """`dvc repro` with nothing to do, `runs` times: wall times (the caller takes the median)."""
    results = [timed_repro(work, env) for _ in range(runs)]
    if not all(r["up_to_date"] for r in results):
        raise RuntimeError(f"no-op repro in {work} was not a no-op")
    return {"runs_s": [r["wall_s"] for r in results]}


def _repeated(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of the same measurement: the median run's details, and every run's wall and CPU time."""
    walls = [r["wall_s"] for r in runs]
    middle = sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]
    return {**middle, "wall_s": round(median(walls), 2), "cpu_s": round(median([r["cpu_s"] for r in runs]), 2),
            "runs_s": walls, "runs_cpu_s": [r["cpu_s"] for r in runs],
            "load_average_before": [r["load_average_before"] for r in runs],
            "stage_medians": _stage_medians(runs),
            "runs_stages": [{s["stage"]: s["seconds"] for s in r["stages"]} for r in runs]}  # to explain an outlier


def _stage_medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: the median seconds over the runs that ran it, and the largest peak RSS seen."""
    order: list[str] = []
    seconds: dict[str, list[float]] = {}
    rss: dict[str, float] = {}
    for run in runs:
        for stage in run["stages"]:
            if stage["stage"] not in seconds:
                order.append(stage["stage"])
            seconds.setdefault(stage["stage"], []).append(stage["seconds"])
            rss[stage["stage"]] = max(rss.get(stage["stage"], 0.0), stage["peak_rss_mb"])
    return [{"stage": name, "seconds": round(median(seconds[name]), 2), "peak_rss_mb": rss[name]} for name in order]


def reference_fit_s() -> float:
    """Seconds of a fixed scikit-learn job in this process (one thread): how fast the machine is right now.

    The shared machine's speed drifts between runs and sessions (noisy neighbours the load average does not
    show), so pipeline times are also reported as multiples of this job, timed before every full repro.
    """
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 20))
    y = X @ rng.normal(size=20) + np.sin(X[:, 0] * 3)
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        HistGradientBoostingRegressor(max_iter=200, early_stopping=False, random_state=0).fit(X, y)
        return round(time.perf_counter() - started, 3)


def _incremental(work: Path, env: dict[str, str], change: tuple[str, str, str], steps: list[int]) -> Any:
    """A generator of one-candidate changes in `work`: each `next()` applies the next step (value - step) and
    times the repro; after the last step it reverts the param and yields the revert's timing."""
    params_file = work / "params.yaml"
    original = params_file.read_text()
    _, candidate, key = change
    value = yaml.safe_load(original)["candidates"][candidate]["hyperparams"][key]
    for step in steps:
        set_param(params_file, candidate, key, value - step)
        yield timed_repro(work, env)
    params_file.write_text(original)
    yield timed_repro(work, env)


def measure_full(code_root: Path, scratch: Path, housing_csv: Path, rounds: int = 3, noop_runs: int = 5,
                 changes: int = 3, change: tuple[str, str, str] = DEFAULT_CHANGE, peer: str | None = None,
                 log: Any = print) -> dict[str, Any]:
    """`rounds` full repros, each in a new clean copy; then, in the last copy, no-op repros, `changes`
    one-candidate param changes (each to a value not run before) and the revert (DVC's run-cache).

    With `peer` (a git revision of the project, e.g. the commit before a change), the same measurements run on
    that revision too, interleaved with the project's (full A, full B, full A, ...), so both see the same machine.
    """
    _, candidate, key = change
    start = yaml.safe_load((code_root / "params.yaml").read_text())["candidates"][candidate]["hyperparams"][key]
    if start - changes < 1:
        raise ValueError(f"{changes} changes of candidates.{candidate}.hyperparams.{key} (now {start}) would "
                         "go below 1: ask for fewer rounds")
    variants = {"project": None} | ({"peer": peer} if peer else {})
    fulls: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    works: dict[str, tuple[Path, dict[str, str]]] = {}
    references = []
    for i in range(rounds):
        for name, revision in variants.items():
            references.append(reference_fit_s())
            work = scratch_copy(code_root, scratch / f"{name}-{i}", revision)
            env = dvc_env(scratch / f"bentoml-home-{name}-{i}", housing_csv)
            fulls[name].append(timed_repro(work, env))
            works[name] = (work, env)
            log(f"  {name} full repro {i + 1}/{rounds}: {fulls[name][-1]['wall_s']:.1f} s "
                f"(reference job {references[-1]:.2f} s)")
    noops = {name: noop_repro(*works[name], noop_runs) for name in variants}
    steps = list(range(1, changes + 1))
    sequences = {name: _incremental(*works[name], change, steps) for name in variants}
    changed: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for step in steps:
        for name in variants:
            changed[name].append(next(sequences[name]))
            log(f"  {name} one-candidate change {step}/{changes}: {changed[name][-1]['wall_s']:.1f} s")
    reverted = {name: next(sequences[name]) for name in variants}
    description = f"candidates.{candidate}.hyperparams.{key}: {start} -> " + ", ".join(
        str(start - step) for step in steps)

    def result(name: str) -> dict[str, Any]:
        return {"full": _repeated(fulls[name]), "noop": noops[name],
                "one_candidate": {"change": description, **_repeated(changed[name])},
                "revert": {"change": "the same param back (DVC's run-cache restores the earlier outputs)",
                           **reverted[name]}}

    out = result("project") | {"reference_fit_s": references}
    if peer:
        out["peer"] = {"revision": peer, **result("peer")}
    return out


def measure_noop_only(repo: Path, runs: int = 3) -> dict[str, Any]:
    """No-op repros in a repository that `dvc status` says is up to date (the smoke run).

    Skipped otherwise: a repro there would run stages and change the repository.
    """
    env = dvc_env(None, None)
    status = subprocess.run([str(VENV_BIN / "dvc"), "status"], cwd=repo, env=env, capture_output=True, text=True,
                            check=False)
    if status.returncode != 0 or UP_TO_DATE not in status.stdout:
        return {"skipped": f"`dvc status` in {repo} is not up to date: {status.stdout.strip()[-300:]}"}
    return {"noop": noop_repro(repo, env, runs)}
