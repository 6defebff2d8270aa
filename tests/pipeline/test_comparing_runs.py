"""The docs' commands for comparing runs print tables that fit 120 columns, as written there.

The `dvc metrics show`, `dvc exp run` and `dvc exp show` lines of the "Comparing runs" block of
docs/experiments.md run in a copy of the session's reproduced pipeline. `dvc exp show` draws its table as wide as
the terminal allows (a pager gets 1024 columns) and hides the columns that do not fit behind "…": its natural
width is measured with 1024 columns, and at 120 it must hide nothing.
"""

from __future__ import annotations

import re
import shlex

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
