"""The docs' commands for comparing runs print tables that fit 120 columns, as written there.

The `dvc metrics show`, `dvc exp run` and `dvc exp show` lines of the "Comparing runs" block of
docs/experiments.md run in a copy of the session's reproduced pipeline. `dvc exp show` draws its table as wide as
the terminal allows (a pager gets 1024 columns) and hides the columns that do not fit behind "…": its natural
width is measured with 1024 columns, and at 120 it must hide nothing.
"""

from __future__ import annotations

import re
import shlex
import subprocess

from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo
from tests.support.tasks import candidates

WIDTH = 120


def readme_commands(prefix: str) -> list[list[str]]:
    """The command lines of the docs' "Comparing runs" block that start with `prefix`, as argument lists."""
    page = (PROJECT_ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    block = re.search(r"## Comparing runs\n+```bash\n(.*?)```", page, re.DOTALL).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith(prefix)]


def width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def test_the_readme_tables_fit_120_columns(repo: PipelineRepo) -> None:
    (metrics,) = readme_commands("dvc metrics show")
    (experiment,) = readme_commands("dvc exp run")
    (show,) = readme_commands("dvc exp show")

    table = repo.run(*metrics, check=True).stdout
    assert width(table) <= WIDTH, table
    # one task's table: the header, its champion and its candidates
    assert re.search(r"^Path +champion +cv +cv_std", table), table
    assert len(table.splitlines()) == 2 + len(candidates(repo.params(), "housing")), table

    repo.run(*experiment, check=True)
    wide = repo.run(*show, check=True, env={"COLUMNS": "1024"}).stdout
    assert width(wide) <= WIDTH, wide
    assert "metrics/housing.json:cv" in wide and "[" in wide, wide  # the champion's scores, an experiment's row
    assert "metrics/promotion/housing.json:verdict" in wide and "would promote" in wide, wide  # the gate's verdict
    at_120 = repo.run(*show, check=True, env={"COLUMNS": str(WIDTH)}).stdout
    assert "…" not in at_120, at_120


def test_the_getting_started_commands_work_in_a_fresh_shell(repo: PipelineRepo) -> None:
    """The docs' first shell block after `make run`, run verbatim by bash in a shell whose PATH has no virtualenv:
    `source .venv/bin/activate` once, then `dvc` and the documented metrics table work as printed."""
    page = (PROJECT_ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(source \.venv/bin/activate\n.*?)```", page, re.DOTALL).group(1)
    (repo.path / ".venv").symlink_to(PROJECT_ROOT / ".venv")  # what `make run` leaves in a clone
    fresh = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(repo.path), "LANG": "C.UTF-8"}
    result = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-c", block], cwd=repo.path, env=fresh,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Data and pipelines are up to date." in result.stdout + result.stderr
    assert re.search(r"^Path +champion +cv", result.stdout, re.MULTILINE), result.stdout
