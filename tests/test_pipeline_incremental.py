"""DVC incrementality: from nothing everything runs, then nothing; one param -> one candidate."""

from __future__ import annotations

from tests.dvc_repo import PipelineRepo, ran_stages


def test_first_repro_runs_every_stage(built_repo: PipelineRepo) -> None:
    stages = set(built_repo.stage_names())
    assert {"fetch@housing", "preprocess@iris", "train-housing@hgb", "train-iris@logreg", "evaluate@housing"} <= stages
    assert ran_stages(built_repo.first_repro_output) == stages


def test_second_repro_runs_nothing(repo: PipelineRepo) -> None:
    result = repo.repro()
    assert ran_stages(result.output) == set()
    assert "Data and pipelines are up to date" in result.output
    status = repo.run("dvc", "status", check=True)
    assert "up to date" in status.output


def test_one_candidate_param_reruns_only_that_candidate(repo: PipelineRepo) -> None:
    params = repo.params()
    params["housing"]["candidates"]["tree"]["hyperparams"]["max_depth"] = 4
    repo.write_params(params)
    before = repo.json("metrics/housing.json")["candidates"]["tree"]["cv"]["r2"]["mean"]

    result = repo.repro()

    assert ran_stages(result.output) == {"train-housing@tree", "evaluate@housing"}
    after = repo.json("metrics/housing.json")["candidates"]["tree"]["cv"]["r2"]["mean"]
    assert after != before, "the retrained candidate's CV score should change with its depth"


def test_feature_code_change_retrains_housing_not_iris(repo: PipelineRepo) -> None:
    features = repo.path / "stages" / "features.py"
    features.write_text(features.read_text() + "\n# a change to the feature code\n")
    ran = ran_stages(repo.repro().output)
    assert {s for s in ran if s.startswith("train-housing@")} == {
        f"train-housing@{name}" for name in repo.params()["housing"]["candidates"]
    }
    assert not any(s.startswith(("train-iris@", "preprocess", "fetch")) for s in ran)
