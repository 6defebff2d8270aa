"""Every stage runs under the project's Python, however dvc is started (stages/python.sh).

DVC runs a stage's command through $SHELL with its own environment and says nothing of its interpreter: with a bare
`python` in dvc.yaml, `.venv/bin/dvc repro` ran the stages under whatever PATH found first. Here PATH holds no
virtualenv and its first `python` and `python3` are impostors that fail, through bash (which execs a stage's
command) and dash (which does not); then the other way round: a dvc whose Python lacks the stack (installed on its
own) runs the stages under the environment on PATH.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo, ran_stages

VENV_BIN = Path(sys.executable).parent
IMPOSTOR = "#!/bin/sh\necho 'an impostor, not the project Python' >&2\nexit 97\n"
PROBE = "sh stages/python.sh -c 'import sys, sklearn; print(sys.prefix)'"


def impostors(directory: Path) -> Path:
    """A directory whose `python` and `python3` fail, to put first on PATH."""
    directory.mkdir()
    for name in ("python", "python3"):
        (directory / name).write_text(IMPOSTOR)
        (directory / name).chmod(0o755)
    return directory


@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/sh"])
def test_the_venvs_dvc_runs_the_stages_without_the_venv_on_path(tmp_path: Path, small_housing_csv: Path,
                                                                 shell: str) -> None:
    repo = PipelineRepo.create(tmp_path / "repo", small_housing_csv)
    path = f"{impostors(tmp_path / 'impostors')}:/usr/bin:/bin"
    result = repo.run(str(VENV_BIN / "dvc"), "repro", "preprocess@iris", env={"PATH": path, "SHELL": shell})
    assert result.returncode == 0, result.output[-3000:]
    assert ran_stages(result.output) == {"check-params", "fetch@iris", "preprocess@iris"}
    assert (repo.path / "data/prepared/iris/train.csv").is_file()


def test_a_dvc_without_the_stack_runs_the_stages_with_the_python_on_path(tmp_path: Path) -> None:
    """The parent is a Python without scikit-learn (a bare virtualenv) that starts the command as DVC does."""
    venv.create(tmp_path / "bare", with_pip=False)
    runner = "import os, subprocess, sys; sys.exit(subprocess.run([os.environ['SHELL'], '-c', sys.argv[1]]).returncode)"
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "SHELL": "/bin/bash"}
    run = subprocess.run([str(tmp_path / "bare" / "bin" / "python"), "-c", runner, PROBE], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()) == Path(sys.prefix)


def test_no_python_with_the_stack_says_so(tmp_path: Path) -> None:
    """Typed by hand: above the shell is a process that is neither a shell nor Python (a terminal, sshd; here
    `timeout`), and PATH finds no Python with the stack."""
    env = {"PATH": f"{impostors(tmp_path / 'impostors')}:/usr/bin:/bin"}
    run = subprocess.run(["timeout", "60", "sh", "-c", PROBE], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 97 and "no Python with the project's requirements" in run.stderr, run.stderr
