"""Guardrails in a real DVC repository with a real SQLite MLflow registry (docs/guardrails.md): a typo in
params.yaml, useless raw data, a gate below its floor or comparing across splits, a registry that vanished, a
tracking server on a closed port and a mixed work tree each stop with one line and leave the committed outputs
as they were. Every test mutates a private copy of the session's reproduced and released repository."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from scripts.server_process import free_port
from stages.files import md5sum
from tests.support.dvc_repo import PipelineRepo, ran_stages, set_source_md5

TRACKED = ("dvc.lock", "metrics", "models/housing/bento_tags.json", "models/iris/bento_tags.json")


def tracked(repo: PipelineRepo) -> dict[str, bytes]:
    """Every git-tracked output: dvc.lock, metrics/, the served set."""
    files = {}
    for name in TRACKED:
        path = repo.path / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                files[str(file.relative_to(repo.path))] = file.read_bytes()
    return files


def one_line_failure(result, text: str) -> str:
    """The failing run's line holding `text`; no traceback anywhere."""
    assert result.returncode != 0, result.output[-2000:]
    assert "Traceback" not in result.output, result.output[-4000:]
    lines = [line for line in result.output.splitlines() if text in line]
    assert lines, result.output[-3000:]
    return lines[0]


def test_a_params_typo_stops_before_any_stage_and_deletes_nothing(repo: PipelineRepo) -> None:
    before = tracked(repo)
    params = repo.params()
    params["cv"]["fold"] = params["cv"].pop("folds")
    repo.write_params(params)
    line = one_line_failure(repo.repro(check=False), "check-params: params.yaml:")
    assert "cv.folds: missing (required); cv.fold: unknown key, a typo? (allowed: folds, seed, n_jobs)" in line
    assert tracked(repo) == before and (repo.path / "data/prepared/housing/train.csv").is_file()

    repo.git("checkout", "params.yaml")
    result = repo.run("dvc", "exp", "run", "-S", "split.test_size=-0.2")
    line = one_line_failure(result, "split.test_size")
    assert "split.test_size: -0.2 is not allowed: input should be greater than 0" in line
    assert tracked(repo) == before and (repo.path / "models/housing/served/champion.joblib").is_file()


def test_identical_raw_rows_stop_the_pipeline_at_preprocess(repo: PipelineRepo, tmp_path: Path) -> None:
    before = tracked(repo)
    raw = pd.read_csv(repo.housing_csv)
    same = tmp_path / "same.csv"
    pd.concat([raw.head(1)] * len(raw), ignore_index=True).to_csv(same, index=False)
    set_source_md5(repo.path, "housing", md5sum(same))
    result = repo.repro(check=False, env={"HOUSING_CSV": str(same)})
    line = one_line_failure(result, "preprocess housing:")
    assert line.endswith("preprocess housing: data/raw/housing.csv: check duplicate rows: 99.8% (399 of 400 rows) "
                         "repeat an earlier row, limit 1.0% (params.yaml housing.data.max_duplicate_share)")
    assert not any(stage.startswith(("train@housing", "evaluate@housing", "promote@housing")) for stage in
                   ran_stages(result.output))
    after = tracked(repo)
    assert {name: data for name, data in after.items() if name != "dvc.lock"} == \
        {name: data for name, data in before.items() if name != "dvc.lock"}


def test_the_first_promotion_needs_the_floor(repo: PipelineRepo) -> None:
    (repo.path / "mlflow.db").unlink()  # a fresh clone: an empty registry, nothing released on this machine
    (repo.path / "models/housing/released.json").unlink()
    params = repo.params()
    params["housing"]["promotion"]["floor"] = 0.999
    repo.write_params(params)
    result = repo.repro("-f", "-s", "promote@housing", check=False)
    line = one_line_failure(result, "promote housing: refused")
    assert "scores test r2 0." in line and "below the floor 0.999: no champion yet, nothing fit to serve" in line
    record = repo.json("metrics/promotion/housing.json")
    assert record["verdict"] == "refused" and "below the floor 0.999" in record["reason"]
    assert record["champion"] is None and not (repo.path / "models/housing/served").exists()


def test_a_perfect_cross_validation_stops_the_gate_as_suspicious(repo: PipelineRepo, tmp_path: Path) -> None:
    """A target that is an exact function of one field (a leak): the linear candidate scores CV r2 1.0 ± 0."""
    leaked = tmp_path / "leaked.csv"
    raw = pd.read_csv(repo.housing_csv)
    raw.assign(median_house_value=1000.0 + 40_000.0 * raw["median_income"]).to_csv(leaked, index=False)
    set_source_md5(repo.path, "housing", md5sum(leaked))
    result = repo.repro("promote@housing", check=False, env={"HOUSING_CSV": str(leaked)})
    line = one_line_failure(result, "promote housing: refused")
    assert "scores a perfect CV r2 1.0000 ± 0.0000: suspicious (a constant or leaked target?)" in line
    assert repo.json("metrics/promotion/housing.json")["verdict"] == "refused"


def test_across_test_splits_both_models_are_scored_on_rows_neither_trained_on(repo: PipelineRepo) -> None:
    """Another split seed: the registry's champion may have trained on today's test rows, so the gate compares
    on the test rows missing from its training split (DVC's cache still holds that split)."""
    old_train = pd.read_csv(repo.path / "data/prepared/housing/train.csv")
    params = repo.params()
    params["split"]["seed"] += 1
    params["housing"]["promotion"]["min_unseen_rows"] = 5
    repo.write_params(params)
    output = repo.repro("promote@housing").output
    test = pd.read_csv(repo.path / "data/prepared/housing/test.csv")
    unseen = int((~pd.util.hash_pandas_object(test, index=False)
                  .isin(set(pd.util.hash_pandas_object(old_train, index=False)))).sum())
    assert 5 <= unseen < len(test)
    reason = repo.json("metrics/promotion/housing.json")["reason"]
    assert f"on the {unseen} test rows neither trained on, r2 " in reason and reason in output

    params["housing"]["promotion"]["min_unseen_rows"] = unseen + 1
    repo.write_params(params)
    repo.repro("promote@housing")
    record = repo.json("metrics/promotion/housing.json")
    assert record["verdict"] == "would keep"
    assert record["reason"].endswith(f"no fair comparison exists: only {unseen} of today's test rows are not in its "
                                     f"training split, fewer than housing.promotion.min_unseen_rows ({unseen + 1})")


def test_a_vanished_registry_is_never_a_first_promotion(repo: PipelineRepo) -> None:
    released = repo.json("models/housing/released.json")
    (repo.path / "mlflow.db").unlink()
    result = repo.repro("-f", "-s", "promote@housing", check=False)
    line = one_line_failure(result, "promote housing: refused")
    assert f"has no champion, but `make release` made version {released['version']} " in line
    assert "its database was deleted or emptied" in line and "`make start-over TASK=housing`" in line
    assert "no model holds" not in result.output

    other = f"sqlite:///{repo.path / 'other.db'}"
    result = repo.repro("-f", "-s", "promote@housing", check=False, env={"MLFLOW_TRACKING_URI": other})
    assert "MLFLOW_TRACKING_URI now points at another store" in one_line_failure(result, "promote housing: refused")
    release = repo.run("python", "-m", "stages.release", "housing")
    assert "release housing: refused, nothing changed: the registry at" in one_line_failure(release, "refused")

    assert "started over" in repo.run("python", "-m", "stages.release", "--start-over", "housing", check=True).stdout
    output = repo.repro("-f", "-s", "promote@housing").output
    assert "would promote: no model holds the champion alias yet (test r2" in output


def test_a_tracking_server_that_does_not_answer_fails_evaluate_fast_and_keeps_its_metrics(
        repo: PipelineRepo) -> None:
    before = tracked(repo)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = repo.repro("-f", "-s", "evaluate@housing", check=False, env={"MLFLOW_TRACKING_URI": uri})
    elapsed = time.monotonic() - started
    line = one_line_failure(result, "evaluate housing:")
    assert f"MLflow tracking server {uri} does not answer (" in line and "MLFLOW_TRACKING_URI" in line
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert tracked(repo) == before  # written before MLflow was reached: the same bytes


def test_bento_and_package_refuse_a_served_model_newer_than_its_graph_and_background(repo: PipelineRepo) -> None:
    """`dvc repro` stopped after promote: a new served champion beside the old compiled graph and background."""
    served = repo.path / "models/housing/served"
    shutil.copyfile(served / "challenger.joblib", served / "champion.joblib")
    result = repo.run("python", "-m", "stages.bento_store")
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "bento store: refused, the work tree is a mixed state, nothing saved:" in result.stderr
    assert "models/housing/served modified (an output of promote@housing, vs dvc.lock)" in result.stderr
    assert "models/housing/compiled/compiled.json was made from model md5" in result.stderr
    assert "stale; run `dvc repro compile@housing`" in result.stderr
    assert "models/housing/explain_background.json was made from model md5" in result.stderr

    result = repo.repro("-s", "package@housing", check=False)
    line = one_line_failure(result, "package housing: refused, a mixed state:")
    assert "run `dvc repro compile@housing`" in line and "run `dvc repro explain@housing`" in line
