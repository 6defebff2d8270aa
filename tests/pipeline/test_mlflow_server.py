"""A team's MLflow server as README "Team setup" runs it: `mlflow server` on PostgreSQL with proxied artifacts.

The session's real PostgreSQL cluster (tests/support/postgres.py) gives this test a database of its own; a real
`mlflow server` (tests/support/mlflow_server.py) serves it over HTTP on a free 127.0.0.1 port. Pointing an already
reproduced repository at it and re-running only the evaluate stages must fill the server with every candidate's
run (named, with the data it was trained and evaluated on) and the registered champions, with no retraining;
changing the champion rule must reuse those runs and move the `champion` alias; and the champion must load and
predict from a directory that has no access to the repository (the model carries its code).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd

from stages.files import md5sum
from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo, ran_stages
from tests.support.mlflow_server import mlflow_server
from tests.support.tasks import candidates

RECORD = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
          "total_bedrooms": 129, "population": 322, "households": 126, "median_income": 8.3252,
          "ocean_proximity": "NEAR BAY"}

# Run by a Python that cannot see the repository (-I: no cwd, no PYTHONPATH on sys.path; cwd: an empty dir).
LOAD_ELSEWHERE = """
import importlib.util, json, sys
import mlflow, pandas as pd
assert importlib.util.find_spec("domain") is None, "the repository's code is importable"
model = mlflow.pyfunc.load_model("models:/housing-regressor@champion")
predictions = model.predict(pd.DataFrame(json.loads(sys.argv[1])))
import domain
print(json.dumps({"predictions": [float(p) for p in predictions], "domain": domain.__file__}))
"""


def check_runs(client, repo: PipelineRepo, task: str) -> list:
    """Every candidate of `task` has a run on the server, and every run is named `<candidate>-<md5[:8]>`, with its
    metrics and the two splits it was trained and evaluated on (DVC path, md5)."""
    runs = client.search_runs([client.get_experiment_by_name(task).experiment_id])
    assert {r.data.tags["candidate"] for r in runs} == set(candidates(repo.params(), task))
    splits = {split: md5sum(repo.path / f"data/prepared/{task}/{split}.csv") for split in ("train", "test")}
    for run in runs:
        candidate = run.data.tags["candidate"]
        assert run.info.run_name == f"{candidate}-{run.data.tags['model_md5'][:8]}"
        assert run.data.tags["dvc_stage"] == f"train@{candidate}"
        metric = repo.params()[task]["champion"]["metric"]
        assert f"cv_{metric}_mean" in run.data.metrics and f"test_{metric}" in run.data.metrics
        inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
                  for i in run.inputs.dataset_inputs}
        assert {c: (d.name, d.digest, json.loads(d.source)["uri"]) for c, d in inputs.items()} == {
            "training": (f"{task}-train", splits["train"], f"data/prepared/{task}/train.csv"),
            "evaluation": (f"{task}-test", splits["test"], f"data/prepared/{task}/test.csv"),
        }
    return runs


def test_a_team_server_on_postgresql_holds_every_run_and_serves_the_champion_anywhere(
        repo: PipelineRepo, postgres_database: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    with mlflow_server(postgres_database, tmp_path / "server") as url:
        server = {"MLFLOW_TRACKING_URI": url}
        # moving to a new server on purpose: the champions released to the local store are forgotten
        repo.run("python", "-m", "stages.release", "--start-over", "housing", "iris", check=True)
        gates = ("evaluate@housing", "evaluate@iris", "promote@housing", "promote@iris")
        first = repo.repro("-f", "-s", *gates, env=server)
        assert ran_stages(first.output) == set(gates)  # no retraining
        repo.release(env=server)

        client = MlflowClient(tracking_uri=url)
        for task, registered in (("housing", "housing-regressor"), ("iris", "iris-classifier")):
            check_runs(client, repo, task)
            tracked = repo.json(f"models/{task}/mlflow.json")
            assert client.get_model_version_by_alias(registered, "champion").run_id == tracked["champion_run_id"]
        before = repo.json("models/housing/mlflow.json")
        before_version = client.get_model_version_by_alias("housing-regressor", "champion").version
        runs_before = {name: run["run_id"] for name, run in before["runs"].items()}
        assert len(check_runs(client, repo, "housing")) == len(runs_before)  # one run per candidate

        # The champion retrained with `scale` toggled (a standard scaler in front: another model file, another md5,
        # the same ranking): evaluate logs that one new run, reuses the others; the gate would promote it (a scaler
        # changes no tree's split: not worse) and `make release` registers a new version and moves the alias to it.
        champion = repo.json("models/housing/champion.json")["candidate"]
        params = repo.params()
        candidates(params, "housing")[champion]["scale"] = not candidates(params, "housing")[champion].get(
            "scale", False)
        repo.write_params(params)
        second = repo.repro("promote@housing", env=server)
        assert ran_stages(second.output) == {"check-params", f"train@{champion}", "evaluate@housing",
                                             "promote@housing"}, \
            second.output
        unchanged = len(runs_before) - 1
        assert f"new runs for {champion}; {unchanged} unchanged" in second.output, second.output
        assert repo.json("models/housing/champion.json")["candidate"] == champion
        runs_after = {name: run["run_id"] for name, run in repo.json("models/housing/mlflow.json")["runs"].items()}
        assert len(check_runs(client, repo, "housing")) == len(runs_before) + 1  # the retrained champion's run
        assert runs_after[champion] != runs_before[champion]
        assert {k: v for k, v in runs_after.items() if k != champion} == {
            k: v for k, v in runs_before.items() if k != champion}
        assert repo.json("metrics/promotion/housing.json")["verdict"] == "would promote"
        assert client.get_model_version_by_alias("housing-regressor", "champion").version == before_version
        repo.release("housing", env=server)
        moved = client.get_model_version_by_alias("housing-regressor", "champion")
        assert moved.run_id == runs_after[champion] and int(moved.version) > int(before_version)
        assert client.get_model_version_by_alias("housing-regressor", "previous-champion").version == before_version

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        rows = [RECORD, *pd.read_csv(repo.path / "data/prepared/housing/test.csv").head(5)
                .drop(columns="median_house_value").to_dict(orient="records")]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
        loaded = subprocess.run([sys.executable, "-I", "-c", LOAD_ELSEWHERE, json.dumps(rows)], cwd=elsewhere,
                                env={**env, "MLFLOW_TRACKING_URI": url}, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    for tree in (repo.path, PROJECT_ROOT):  # the model's own copy of the code, not a checkout's
        assert not Path(answer["domain"]).resolve().is_relative_to(tree.resolve()), answer["domain"]
    expected = joblib.load(repo.path / "models/housing/champion.joblib").predict(pd.DataFrame(rows))
    assert answer["predictions"] == [float(p) for p in expected]
