"""Real DVC repositories in temporary directories, built from this project's own files.

A `PipelineRepo` is a git + DVC repository holding a copy of stages/, dvc.yaml and a
params.yaml made fast for tests (small models, 3 folds) and pointing at generated data.
Commands run as a user would run them: `dvc ...` in a subprocess with the project's virtualenv
first on PATH.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stages.files import md5sum
from tests.support import PROJECT_ROOT
from tests.support.tasks import candidates

# What a repository needs to run the pipeline: the stages, the packages they import or package, the pipeline.
FILES = ("stages", "domain", "tasks", "bento_service", "prediction_log", "monitoring", "dvc.yaml", ".dvcignore")
# Hyperparameters that make a candidate slow, and the value a test run uses instead.
FAST_HYPERPARAMS = {"n_estimators": 10, "max_iter": 30}


def fast_params(params: dict[str, Any]) -> dict[str, Any]:
    """The project's params with every candidate made cheap: same structure, same knobs."""
    fast = copy.deepcopy(params)
    fast["cv"]["folds"] = 3
    for task in fast["tasks"]:
        for spec in candidates(fast, task).values():
            hyper = spec.get("hyperparams") or {}
            for key, value in FAST_HYPERPARAMS.items():
                if key in hyper:
                    hyper[key] = value
            if "seeds" in spec:
                spec["seeds"] = min(int(spec["seeds"]), 2)
            if "search" in spec:
                spec["search"]["n_iter"] = min(int(spec["search"].get("n_iter", 2)), 2)
    fast["housing"]["features"]["neighbor_counts"] = [3, 8]
    fast["housing"]["features"]["neighbor_folds"] = 3
    return fast


def project_fast_params() -> dict[str, Any]:
    """`fast_params` of the project's own params.yaml."""
    return fast_params(yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text()))


def set_source_md5(repo: Path, task: str, md5: str) -> None:
    """Declare another md5 for the task's raw data (a test's own copy of it), the rest of the file as it is."""
    declaration = repo / "tasks" / f"{task}.yaml"
    text = declaration.read_text()
    old = yaml.safe_load(text)["source"]["md5"]
    declaration.write_text(text.replace(old, md5))


def venv_env(**extra: str) -> dict[str, str]:
    # not the session's served set either (SERVED_MODELS, tests/conftest.py): a repository serves its own
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_")) and k != "SERVED_MODELS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("HOUSING_CSV", None)
    env.update(extra)
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class PipelineRepo:
    """A git + DVC repository with the project's pipeline, in `path`."""

    def __init__(self, path: Path, housing_csv: Path, bentoml_home: Path | None = None) -> None:
        self.path = path
        self.housing_csv = housing_csv
        # None: the session's store (the models the service tests serve); a path: a private store, so a
        # test's own models never mix with the session's.
        self.bentoml_home = bentoml_home

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, housing_csv: Path, params: dict[str, Any] | None = None,
               bentoml_home: Path | None = None) -> PipelineRepo:
        path.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            source = PROJECT_ROOT / name
            if source.is_dir():
                shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, path / name)
        set_source_md5(path, "housing", md5sum(housing_csv))
        if params is None:
            params = project_fast_params()
        (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        shutil.copy2(PROJECT_ROOT / ".gitignore", path / ".gitignore")
        repo = cls(path, housing_csv, bentoml_home)
        repo.git("init", "-q", "-b", "main")
        repo.git("config", "user.email", "tests@example.com")
        repo.git("config", "user.name", "tests")
        repo.run("dvc", "init", "-q", check=True)
        shutil.copy2(PROJECT_ROOT / ".dvc" / "config", path / ".dvc" / "config")  # the project's DVC settings
        shutil.copytree(PROJECT_ROOT / ".dvc" / "plots", path / ".dvc" / "plots")  # its plot templates
        repo.git("add", "-A")
        repo.git("commit", "-qm", "pipeline")
        return repo

    def clone_to(self, path: Path) -> PipelineRepo:
        """A full copy (work tree, git, DVC cache, MLflow database) to mutate freely."""
        shutil.copytree(self.path, path, symlinks=True)
        return PipelineRepo(path, self.housing_csv, bentoml_home=path.parent / "bentoml-home")

    # -- commands ------------------------------------------------------------------------
    def run(self, *args: str, check: bool = False, env: dict[str, str] | None = None, timeout: float = 900) -> Result:
        environment = venv_env(HOUSING_CSV=str(self.housing_csv))
        if self.bentoml_home is not None:
            environment["BENTOML_HOME"] = str(self.bentoml_home)
        environment.update(env or {})
        proc = subprocess.run(args, cwd=self.path, env=environment, capture_output=True, text=True, timeout=timeout)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{result.output[-4000:]}")
        return result

    def git(self, *args: str) -> str:
        return self.run("git", *args, check=True).stdout

    def repro(self, *args: str, check: bool = True, **kwargs: Any) -> Result:
        return self.run("dvc", "repro", *args, check=check, **kwargs)

    def make(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Result:
        """`make ARGS` with the project's Makefile, its virtualenv linked in (as installed by `make install`)."""
        if not (self.path / "Makefile").exists():
            for name in ("Makefile", "bentofile.yaml", "requirements.txt", "requirements-team.txt", "constraints.txt"):
                shutil.copy2(PROJECT_ROOT / name, self.path / name)
            shutil.copytree(PROJECT_ROOT / "scripts", self.path / "scripts",
                            ignore=shutil.ignore_patterns("__pycache__"))
            (self.path / ".venv").symlink_to(PROJECT_ROOT / ".venv")
            with open(self.path / ".git" / "info" / "exclude", "a", encoding="utf-8") as fh:
                fh.write(".venv\n")
            self.git("add", "Makefile", "bentofile.yaml", "requirements.txt", "requirements-team.txt",
                     "constraints.txt", "scripts")
            self.git("commit", "-qm", "the project's Makefile")
        return self.run("make", "--no-print-directory", *args, check=check, env=env)

    def release(self, *tasks: str, env: dict[str, str] | None = None) -> Result:
        """`make release`: the gate's verdicts applied to the repository's MLflow registry."""
        return self.run("python", "-m", "stages.release", *tasks, check=True, env=env)

    def save_served_set(self) -> Result:
        """`make store`: the served set saved into the repository's BentoML store."""
        return self.run("python", "-m", "stages.bento_store", check=True)

    def build_bento(self) -> str:
        """`make bento` in the repository: the served set saved into its store, then `bentoml build`; the tag."""
        shutil.copy2(PROJECT_ROOT / "bentofile.yaml", self.path / "bentofile.yaml")
        self.save_served_set()
        build = self.run(str(Path(sys.executable).parent / "bentoml"), "build", "--output", "tag", check=True)
        return build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")

    def stage_names(self) -> list[str]:
        out = self.run("dvc", "stage", "list", "--name-only", check=True).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    # -- files ---------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    def write_params(self, params: dict[str, Any]) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def declaration(self, task: str) -> dict[str, Any]:
        """The task's declaration, tasks/<task>.yaml."""
        return yaml.safe_load((self.path / "tasks" / f"{task}.yaml").read_text())

    def json(self, relative: str) -> Any:
        return json.loads((self.path / relative).read_text())

    def commit_all(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)


def ran_stages(output: str) -> set[str]:
    """Stage names DVC says it ran, from `dvc repro` output."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


# A Python warning ("<file>:<line>: FutureWarning: <message>"), or a log record or DVC message of level WARNING
WARNING = re.compile(r"\b[A-Z]\w*Warning: |\bWARNING\b")


def warnings_in(text: str) -> list[str]:
    """The lines of `text` that report a warning."""
    return [line for line in text.splitlines() if WARNING.search(line)]
