"""DVC incrementality: from nothing everything runs, then nothing; one param -> one candidate."""

from __future__ import annotations

import sqlite3

from tests.support.dvc_repo import PipelineRepo, ran_stages
from tests.support.tasks import candidates


def _runs_by_candidate(repo: PipelineRepo, task: str) -> dict[str, set[str]]:
    """MLflow run ids per candidate tag in the repository's database, for one task's experiment."""
    with sqlite3.connect(repo.path / "mlflow.db") as db:
        rows = db.execute(
            "SELECT t.value, r.run_uuid FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
            "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'candidate' "
            "WHERE e.name = ? AND r.lifecycle_stage = 'active'", (task,)).fetchall()
    runs: dict[str, set[str]] = {}
    for candidate, run_id in rows:
        runs.setdefault(candidate, set()).add(run_id)
    return runs


def test_first_repro_runs_every_stage(built_repo: PipelineRepo) -> None:
    stages = set(built_repo.stage_names())
    assert {"fetch@housing", "preprocess@iris", "train@housing-hgb", "train@iris-logreg", "evaluate@housing"} <= stages
    assert ran_stages(built_repo.first_repro_output) == stages


def test_second_repro_runs_nothing(repo: PipelineRepo) -> None:
    result = repo.repro()
    assert ran_stages(result.output) == set()
    assert "Data and pipelines are up to date" in result.output
    status = repo.run("dvc", "status", check=True)
    assert "up to date" in status.output


def test_one_candidate_param_reruns_only_that_candidate(repo: PipelineRepo) -> None:
    params = repo.params()
    params["candidates"]["housing-tree"]["hyperparams"]["max_depth"] = 4
    repo.write_params(params)
    before = repo.json("metrics/housing/housing-tree.json")
    runs_before = _runs_by_candidate(repo, "housing")
    tracked_before = repo.json("models/housing/mlflow.json")["runs"]
    served_before = repo.json("models/housing/served/served.json")

    result = repo.repro()

    # check-params reads the whole file (its output stays the same bytes); the gate re-checks (the runner-up may
    # have changed); what follows it runs only if a served model changed
    expected = {"check-params", "train@housing-tree", "evaluate@housing", "promote@housing"}
    if repo.json("models/housing/served/served.json") != served_before:
        expected |= {"profile@housing", "compile@housing", "explain@housing", "package@housing"}
    assert ran_stages(result.output) == expected
    assert repo.json("metrics/housing/housing-tree.json")["cv"] != before["cv"], (
        "the retrained candidate's CV score should change with its depth")
    # MLflow: one new run, for the retrained candidate; the others keep theirs
    runs_after = _runs_by_candidate(repo, "housing")
    tracked = repo.json("models/housing/mlflow.json")["runs"]
    assert runs_after["housing-tree"] - runs_before["housing-tree"] == {tracked["housing-tree"]["run_id"]}
    for name in set(tracked) - {"housing-tree"}:
        assert runs_after[name] == runs_before[name] == {tracked[name]["run_id"]}
        assert tracked[name]["run_id"] == tracked_before[name]["run_id"]


def test_evaluate_refills_an_empty_mlflow_store(repo: PipelineRepo) -> None:
    """Runs are keyed by the model, not remembered by the train stage: a new tracking store (a fresh clone, a team
    server) gets every candidate's run the next time evaluate runs, the gate's verdict the next time it runs and
    the champion alias at the next `make release`, with no retraining."""
    (repo.path / "mlflow.db").unlink()
    (repo.path / "models/iris/released.json").unlink()  # a fresh clone: nothing released on this machine
    assert ran_stages(repo.repro("-f", "-s", "evaluate@iris").output) == {"evaluate@iris"}
    runs = _runs_by_candidate(repo, "iris")
    assert set(runs) == set(candidates(repo.params(), "iris"))
    assert all(len(ids) == 1 for ids in runs.values())
    assert ran_stages(repo.repro("-f", "-s", "promote@iris").output) == {"promote@iris"}
    champion, tracked = repo.json("models/iris/champion.json"), repo.json("models/iris/mlflow.json")
    assert tracked["champion_run_id"] in runs[champion["candidate"]]
    promotion = repo.json("metrics/promotion/iris.json")
    assert (promotion["verdict"], promotion["incumbent"]) == ("would promote", None)
    assert "release iris: champion -> version 1" in repo.release("iris").output


def test_feature_code_change_retrains_every_candidate_and_changes_no_output_of_iris(repo: PipelineRepo) -> None:
    """Feature code is shared code (a declaration may name a transformer in it, so every task's train, evaluate,
    explain and compile stages depend on it): they all run again, but iris's outputs come out byte for byte the
    same, and nothing upstream (fetch, preprocess) runs."""
    iris_outputs = ("metrics/iris.json", "models/iris/champion.json", "models/iris/bento_tags.json")
    before = {path: (repo.path / path).read_bytes() for path in iris_outputs}
    features = repo.path / "domain" / "features.py"
    features.write_text(features.read_text() + "\n# a change to the feature code\n")
    ran = ran_stages(repo.repro().output)
    assert {s for s in ran if s.startswith("train@housing-")} == {
        f"train@{name}" for name in candidates(repo.params(), "housing")
    }
    assert not any(s.startswith(("preprocess", "fetch")) for s in ran), ran
    assert {path: (repo.path / path).read_bytes() for path in iris_outputs} == before
