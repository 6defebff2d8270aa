"""Comparing runs: metrics/params diff across git branches, `dvc exp run -S`, MLflow records."""

from __future__ import annotations

import json
import sqlite3

import joblib
import pandas as pd

from tests.support.dvc_repo import PipelineRepo, ran_stages
from tests.support.tasks import candidates


def test_metrics_and_params_diff_between_branches(repo: PipelineRepo) -> None:
    repo.git("checkout", "-qb", "deeper-tree")
    params = repo.params()
    old_depth = params["candidates"]["housing-tree"]["hyperparams"]["max_depth"]
    params["candidates"]["housing-tree"]["hyperparams"]["max_depth"] = 3
    repo.write_params(params)
    repo.repro()
    repo.commit_all("shallower tree")

    # No DVC remote exists: metrics must come from git (cache: false). Only what changed is listed: the retrained
    # candidate's scores, if the champion moved to or from it the champion's, and the gate's (it ran again: the
    # runner-up may have changed, and the registry now holds an incumbent).
    metrics = json.loads(repo.run("dvc", "metrics", "diff", "main", "deeper-tree", "--json", check=True).stdout)
    changed = {path: keys for path, keys in metrics.items() if keys}
    tree = "metrics/housing/housing-tree.json"
    assert set(changed[tree]) >= {"cv", "test"}
    assert changed[tree]["cv"]["old"] != changed[tree]["cv"]["new"]
    assert set(changed) <= {tree, "metrics/housing.json", "metrics/promotion/housing.json"}
    if "metrics/housing.json" in changed:
        champions = {repo.run("git", "show", f"{rev}:metrics/housing.json").stdout for rev in ("main", "deeper-tree")}
        assert any('"champion": "housing-tree"' in text for text in champions)
    text = repo.run("dvc", "metrics", "diff", "main", "deeper-tree", check=True).stdout
    # header + tree + champion + the gate's scores (newcomer, incumbent, champion, challenger)
    assert len([line for line in text.splitlines() if line.strip()]) <= 1 + 5 + 5 + 4, text

    diff = json.loads(repo.run("dvc", "params", "diff", "main", "deeper-tree", "--json", check=True).stdout)
    key = "candidates.housing-tree.hyperparams.max_depth"
    assert diff["params.yaml"] == {key: {"old": old_depth, "new": 3, "diff": 3 - old_depth}}


def test_exp_run_set_param_is_tracked_by_dvc_and_mlflow(repo: PipelineRepo) -> None:
    runs_before = _mlflow_runs(repo)
    result = repo.run("dvc", "exp", "run", "--temp", "-n", "shallow-tree",
                      "-S", "candidates.housing-tree.hyperparams.max_depth=2", check=True)
    assert ran_stages(result.output) >= {"train@housing-tree", "evaluate@housing"}

    experiments = json.loads(repo.run("dvc", "exp", "show", "--json", check=True).stdout)
    names = {exp.get("name") for commit in experiments for exp in (commit.get("experiments") or [])}
    assert "shallow-tree" in names

    # The temporary run logged into the repository's own MLflow database, not a lost copy.
    new_runs = _mlflow_runs(repo) - runs_before
    assert new_runs, "dvc exp run --temp logged no MLflow run into the repository database"
    with sqlite3.connect(repo.path / "mlflow.db") as db:
        tags = dict(db.execute(
            "SELECT key, value FROM tags WHERE run_uuid = ? AND key IN ('candidate', 'dvc_exp_name')",
            (next(iter(new_runs)),),
        ).fetchall())
    assert tags == {"candidate": "housing-tree", "dvc_exp_name": "shallow-tree"}


def test_mlflow_has_every_candidate_and_the_registered_champion(repo: PipelineRepo, mlflow_tracking_uri) -> None:
    import mlflow

    mlflow_tracking_uri(f"sqlite:///{repo.path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    for task, metric in (("housing", "cv_r2_mean"), ("iris", "cv_accuracy_mean")):
        experiment = client.get_experiment_by_name(task)
        runs = client.search_runs([experiment.experiment_id])
        names = set(candidates(repo.params(), task))
        assert {r.data.tags["candidate"] for r in runs} == names
        for run in runs:
            assert metric in run.data.metrics and any(k.startswith("test_") for k in run.data.metrics)
            assert run.data.params["estimator"]
            assert run.data.tags["raw_data_md5"] == repo.declaration(task)["source"]["md5"]
            assert len(run.data.tags["git_commit"]) == 40
            assert run.data.tags["dvc_stage"] == f"train@{run.data.tags['candidate']}"

    version = client.get_model_version_by_alias("housing-regressor", "champion")  # released like `make run` does
    assert version.run_id == repo.json("models/housing/mlflow.json")["champion_run_id"]

    rows = pd.read_csv(repo.path / "data/prepared/housing/test.csv").drop(columns="median_house_value").head(20)
    registered = mlflow.pyfunc.load_model("models:/housing-regressor@champion").predict(rows)
    local = joblib.load(repo.path / "models/housing/champion.joblib").predict(rows)
    assert list(registered) == list(local)
    # ocean_proximity is optional in the model signature: a client may leave it out.
    without_ocean = mlflow.pyfunc.load_model("models:/housing-regressor@champion").predict(
        rows.drop(columns="ocean_proximity"))
    assert len(without_ocean) == len(rows)


def _mlflow_runs(repo: PipelineRepo) -> set[str]:
    with sqlite3.connect(repo.path / "mlflow.db") as db:
        return {row[0] for row in db.execute("SELECT run_uuid FROM runs")}
