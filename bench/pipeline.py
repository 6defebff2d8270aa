"""Pipeline timings: full `dvc repro` from a clean copy, no-op repro, a one-candidate param change.

Everything runs in a scratch copy of the project (its tracked and untracked-but-not-ignored
files, `git init`ed), never in the repository itself: the repository's params.yaml, dvc.lock,
MLflow database and BentoML store are not touched. The per-stage split comes from the time at
which DVC prints each `Running stage` line (so a stage's time includes DVC's own hashing and
lock writing after it); the peak RSS of each stage's process tree is sampled every 0.1 s.
"""

from __future__ import annotations

import contextlib
import os
import re
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
DEFAULT_CHANGE = ("housing", "tree", "max_depth")


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


def scratch_copy(code_root: Path, dest: Path) -> Path:
    """The project's source files (no data, models, MLflow store or caches) in a fresh git repo."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=code_root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    dest.mkdir(parents=True)
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
    """Samples the RSS of a process's descendants (the running stage) every 0.1 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.stage = "(dvc start)"
        self.peak_mb: dict[str, float] = {}
        self.dvc_peak_mb = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.dvc_peak_mb = max(self.dvc_peak_mb, self.root.memory_info().rss / 2**20)
                total = 0.0
                for child in self.root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss / 2**20
                self.peak_mb[self.stage] = max(self.peak_mb.get(self.stage, 0.0), total)
            except psutil.Error:
                return
            self.stopped.wait(0.1)


def timed_repro(work: Path, env: dict[str, str], args: list[str] | None = None) -> dict[str, Any]:
    """Run `dvc repro [args]`, returning wall time, the per-stage split and peak RSS per stage."""
    command = [str(VENV_BIN / "dvc"), "repro", *(args or [])]
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
    sampler.stopped.set()
    sampler.join()
    text = "".join(output)
    if returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({returncode}):\n{text[-4000:]}")
    stages = []
    for i, (stage, at) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else wall
        stages.append({"stage": stage, "seconds": round(end - at, 2),
                       "peak_rss_mb": round(sampler.peak_mb.get(stage, 0.0), 1)})
    return {"command": " ".join(["dvc", "repro", *(args or [])]), "wall_s": round(wall, 2),
            "before_first_stage_s": round(marks[0][1], 2) if marks else round(wall, 2), "stages": stages,
            "dvc_peak_rss_mb": round(sampler.dvc_peak_mb, 1), "up_to_date": UP_TO_DATE in text,
            "cached_stages": text.count("is cached - skipping run")}


def set_param(params_file: Path, task: str, candidate: str, key: str, value: Any) -> None:
    params = yaml.safe_load(params_file.read_text())
    params[task]["candidates"][candidate]["hyperparams"][key] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def noop_repro(work: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    """`dvc repro` with nothing to do, `runs` times: wall times (the caller takes the median)."""
    results = [timed_repro(work, env) for _ in range(runs)]
    if not all(r["up_to_date"] for r in results):
        raise RuntimeError(f"no-op repro in {work} was not a no-op")
    return {"runs_s": [r["wall_s"] for r in results]}


def measure_full(code_root: Path, scratch: Path, housing_csv: Path, noop_runs: int = 5,
                 change: tuple[str, str, str] = DEFAULT_CHANGE) -> dict[str, Any]:
    """Full repro from a clean copy, then no-op repros, then change one candidate's param and revert."""
    work = scratch_copy(code_root, scratch / "project")
    env = dvc_env(scratch / "bentoml-home", housing_csv)
    full = timed_repro(work, env)
    noop = noop_repro(work, env, noop_runs)
    params_file = work / "params.yaml"
    original = params_file.read_text()
    task, candidate, key = change
    value = yaml.safe_load(original)[task]["candidates"][candidate]["hyperparams"][key]
    set_param(params_file, task, candidate, key, value - 1)
    changed = timed_repro(work, env)
    params_file.write_text(original)
    reverted = timed_repro(work, env)
    return {"full": full, "noop": noop,
            "one_candidate": {"change": f"{task}.candidates.{candidate}.hyperparams.{key}: {value} -> {value - 1}",
                              **changed},
            "revert": {"change": "the same param back (DVC's run-cache restores the earlier outputs)", **reverted}}


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
