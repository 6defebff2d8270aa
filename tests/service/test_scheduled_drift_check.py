"""The scheduled drift check's own script (.github/workflows/drift-check.yml, step "Drift check") on real logs.

The step runs exactly as GitHub would run it (bash, the workflow's variables, the project's virtualenv), over a
prediction log written by the real PredictionLog: drifted housing traffic fails the job with exit 1 and the job
summary names the task; a log that cannot be judged fails it too, with the monitor's exit 2.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.service.test_monitoring import logged_predictions, model_tag, write_log
from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo
from tests.support.traffic import traffic

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "drift-check.yml"


def run_step(tmp_path: Path, log_dir: Path, tasks: str) -> tuple[int, str]:
    """(exit code, job summary) of the "Drift check" step with the job's environment, the log in `log_dir`."""
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    (step,) = [step for step in job["steps"] if step.get("name") == "Drift check"]
    summary = tmp_path / "summary.md"
    env = {**os.environ, **job["env"], "PREDICTION_LOG_DIR": str(log_dir), "MONITOR_OUT": str(tmp_path / "reports"),
           "MONITOR_TASKS": tasks, "GITHUB_STEP_SUMMARY": str(summary)}
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    return result.returncode, summary.read_text() if summary.exists() else result.stderr


def test_drift_fails_the_scheduled_job_and_the_summary_says_which_task(built_repo: PipelineRepo,
                                                                        tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    drifted = traffic(built_repo, "housing", 600, seed=2, income_factor=1.5)
    write_log(logs, "housing", model_tag(built_repo, "housing"), drifted,
              logged_predictions(built_repo, "housing", drifted))
    clean = traffic(built_repo, "iris", 600, seed=1)
    write_log(logs, "iris", model_tag(built_repo, "iris"), clean, logged_predictions(built_repo, "iris", clean))

    code, summary = run_step(tmp_path, logs, "housing iris")

    assert code == 1, summary
    assert "- housing: DRIFT (exit 1)" in summary and "- iris: no drift (exit 0)" in summary
    assert (tmp_path / "reports" / "housing-monitor.html").is_file()


def test_a_log_that_cannot_be_judged_fails_the_job_too(tmp_path: Path) -> None:
    code, summary = run_step(tmp_path, tmp_path / "no-log-here", "housing")
    assert code == 2 and "- housing: nothing to judge (exit 2)" in summary
