"""The monitoring CLIs take their tasks from params.yaml: `--task` accepts exactly the declared ones, `--all` checks
each of them, and `python -m domain.tasks` lists them for shell code (Makefile, workflows)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from domain import tasks as declared
from monitoring import check, cli, monitor, performance
from tests.support import PROJECT_ROOT
from tests.support.tasks import TASKS


@pytest.mark.parametrize("module", [check, monitor, performance], ids=lambda m: m.__name__)
def test_an_unknown_task_is_a_usage_error_naming_the_declared_tasks(module, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        module.parse_args(["--task", "housing_typo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown task 'housing_typo'" in err and ", ".join(TASKS) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("module", [check, monitor, performance], ids=lambda m: m.__name__)
def test_every_declared_task_is_accepted(module) -> None:
    for task in TASKS:
        assert module.parse_args(["--task", task]).task == task


def test_a_task_added_to_params_yaml_is_accepted_without_a_code_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "task_names", lambda: (*TASKS, "loans"))
    assert monitor.parse_args(["--task", "loans"]).task == "loans"


def test_check_needs_a_task_or_all_but_not_both(capsys: pytest.CaptureFixture) -> None:
    for argv in ([], ["--all", "--task", TASKS[0]]):
        with pytest.raises(SystemExit):
            check.parse_args(argv)
    assert check.parse_args(["--all"]).all


@pytest.mark.parametrize(("codes", "expected"), [
    ([0, 0], 0),
    ([2, 0], 2),
    ([0, 1], 1),
    ([4, 1], 1),       # drift wins over any other verdict
    ([2, 4], 4),       # a verdict outranks "nothing to judge": a retry would not change it
    ([5, 6], 5),       # else the first verdict, in task order
    ([3, 2], 3),
    ([], 0),
])
def test_the_overall_code_is_the_one_that_most_needs_acting_on(codes: list[int], expected: int) -> None:
    assert check.overall(codes) == expected


def test_all_runs_both_tools_on_every_declared_task_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    drift = {TASKS[0]: 0, TASKS[-1]: 4}
    arms = {TASKS[0]: 5, TASKS[-1]: 0}
    calls: list[tuple[str, str]] = []

    def tool(name: str, codes: dict[str, int]):
        def main(argv: list[str]) -> int:
            task = argv[argv.index("--task") + 1]
            calls.append((name, task))
            assert argv[argv.index("--out") + 1] == str(tmp_path) and "--since" in argv
            return codes[task]
        return main

    monkeypatch.setattr(check.monitor, "main", tool("monitor", drift))
    monkeypatch.setattr(check.performance, "main", tool("performance", arms))

    code = check.main(["--all", "--since", "24h", "--out", str(tmp_path)])

    assert calls == [(name, task) for task in TASKS for name in ("monitor", "performance")]
    out = capsys.readouterr().out
    assert f"monitor {TASKS[0]}: exit 5 (the challenger is significantly better)" in out
    assert f"monitor {TASKS[-1]}: exit 4 (missing values)" in out
    assert code == 5 and out.rstrip().endswith(f"monitor {', '.join(TASKS)}: exit 5 "
                                               "(the challenger is significantly better)")


# -- python -m domain.tasks ------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose params.yaml lists the real declarations in reverse order."""
    shutil.copytree(PROJECT_ROOT / "tasks", tmp_path / "tasks")
    (tmp_path / "params.yaml").write_text(f"tasks: [{', '.join(reversed(TASKS))}]\n")
    return tmp_path


def test_domain_tasks_lists_the_declared_tasks_in_params_order(project: Path) -> None:
    assert declared.selected(root=project) == list(reversed(TASKS))
    assert declared.selected(first=True, root=project) == [TASKS[-1]]


def test_no_download_keeps_only_tasks_whose_data_needs_no_network(project: Path) -> None:
    offline = declared.selected(no_download=True, root=project)
    for task in TASKS:
        source = (project / "tasks" / f"{task}.yaml").read_text()
        assert (task in offline) == ("\n  url:" not in source), task
    assert offline, "CI trains the offline tasks: at least one must exist"


def test_domain_tasks_prints_one_task_a_line(capsys: pytest.CaptureFixture) -> None:
    assert declared.main(["--first"]) == 0
    assert capsys.readouterr().out == f"{TASKS[0]}\n"
    assert declared.main([]) == 0
    assert capsys.readouterr().out.split() == list(TASKS)
