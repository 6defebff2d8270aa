"""The workflows' task loops run as GitHub runs them (bash, the job's environment), over stand-ins for the
virtualenv's python and dvc: the tasks come from params.yaml (the real `python -m domain.tasks`), each is checked,
and the job's exit code and summary follow the monitor's codes. Seconds, no server, no model: the drift check on
real logs is tests/service/test_scheduled_drift_check.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_ROOT
from tests.unit.test_ci_workflow import DRIFT_CHECK, drift_check_step, load_workflow, steps_that_run, team_env

# A stand-in for the virtualenv's tools: it records each call; `python -m domain.tasks` is the real one (the
# declared tasks), `python -m monitoring.check --task T` exits with CODES[T] (a message on stderr for 2).
STUB = """#!{python}
import subprocess, sys
args = sys.argv[1:]
with open({calls!r}, "a") as calls:
    calls.write(" ".join(["{tool}", *args]) + "\\n")
if args[:2] == ["-m", "domain.tasks"]:
    sys.exit(subprocess.call([sys.executable, *args], cwd={root!r}))
if "--task" in args:
    code = {codes!r}[args[args.index("--task") + 1]]
    if code == 2:
        print("monitor: not enough predictions yet", file=sys.stderr)
        print("  (detail)", file=sys.stderr)
    sys.exit(code)
"""


def run_script(script: str, tmp_path: Path, env: dict[str, str],
               codes: dict[str, int] | None = None) -> tuple[int, list[str], str]:
    """(exit code, the tools' calls, job summary) of a workflow step's script run by bash as GitHub runs it, in a
    directory whose .venv/bin holds stubs of python and dvc."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls, summary = tmp_path / "calls.txt", tmp_path / "summary.md"
    for tool in ("python", "dvc"):
        stub = bin_dir / tool
        stub.write_text(STUB.format(python=sys.executable, calls=str(calls), tool=tool, root=str(PROJECT_ROOT),
                                    codes=codes or {}))
        stub.chmod(0o755)
    full_env = {**os.environ, **env, "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, env=full_env,
                            capture_output=True, text=True, timeout=120, check=False)
    return (result.returncode, calls.read_text().splitlines() if calls.exists() else [],
            summary.read_text() if summary.exists() else result.stderr)


def drift_check_env(tmp_path: Path, tasks: str = "") -> dict[str, str]:
    """The job's environment, with the `tasks` input GitHub would substitute (empty on the schedule)."""
    (job,) = load_workflow(DRIFT_CHECK)["jobs"].values()
    assert job["env"]["MONITOR_TASKS"] == "${{ inputs.tasks }}"
    return {**job["env"], "MONITOR_TASKS": tasks, "MONITOR_OUT": str(tmp_path / "reports")}


def test_drift_check_runs_the_monitor_on_every_declared_task_and_fails_on_drift(tmp_path: Path) -> None:
    from tests.support.tasks import TASKS

    first, *_, last = TASKS
    code, calls, summary = run_script(drift_check_step()["run"], tmp_path, drift_check_env(tmp_path),
                                      codes={first: 2, last: 1})
    checked = [call.split("--task ")[1].split()[0] for call in calls if "monitoring.check" in call]
    assert checked == list(TASKS), "every task params.yaml declares, in its order"
    assert all("--since 24h" in call for call in calls if "monitoring.check" in call)
    assert code == 1, summary  # drift wins
    assert f"- {last}: DRIFT (exit 1)" in summary
    assert f"- {first}: nothing to judge (exit 2): monitor: not enough predictions yet" in summary


def test_drift_check_fails_on_the_first_problem_and_passes_when_all_is_well(tmp_path: Path) -> None:
    from tests.support.tasks import TASKS

    code, _, summary = run_script(drift_check_step()["run"], tmp_path / "ok", drift_check_env(tmp_path / "ok"),
                                  codes=dict.fromkeys(TASKS, 0))
    assert code == 0 and summary.count("no drift (exit 0)") == len(TASKS)
    code, _, summary = run_script(drift_check_step()["run"], tmp_path / "bad", drift_check_env(tmp_path / "bad"),
                                  codes={**dict.fromkeys(TASKS, 0), TASKS[-1]: 6})
    assert code == 6 and f"- {TASKS[-1]}: challenger significantly worse: stop it? (exit 6)" in summary


def test_drift_check_of_the_tasks_a_manual_run_names(tmp_path: Path) -> None:
    from tests.support.tasks import TASKS

    env = drift_check_env(tmp_path, tasks=TASKS[-1])
    code, calls, _ = run_script(drift_check_step()["run"], tmp_path, env, codes={TASKS[-1]: 0})
    assert code == 0 and [call for call in calls if "monitoring.check" in call] == [
        f"python -m monitoring.check --task {TASKS[-1]} --since 24h --log-dir prediction-log "
        f"--out {tmp_path / 'reports'}"]


def test_drift_check_profiles_every_declared_task(tmp_path: Path) -> None:
    from tests.support.tasks import TASKS

    step = drift_check_step("Reference profiles of the champions (the monitor's fallback when a model is not in a "
                            "local store)")
    code, calls, _ = run_script(step["run"], tmp_path, drift_check_env(tmp_path))
    assert code == 0 and calls[-1].split() == ["dvc", "repro", *(f"profile@{task}" for task in TASKS)]


def test_without_a_remote_the_pipeline_job_trains_the_tasks_that_need_no_download(tmp_path: Path) -> None:
    from domain.tasks import selected

    ran = steps_that_run(load_workflow()["jobs"]["pipeline"], team_env(""))
    [train] = [step for step in ran if "evaluate@" in step.get("run", "")]
    code, calls, _ = run_script(train["run"], tmp_path, {})
    offline = selected(no_download=True)
    assert offline, "CI would have nothing small to train"
    assert code == 0 and calls[-1].split() == ["dvc", "repro", *(f"evaluate@{task}" for task in offline)]
