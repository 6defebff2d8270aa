"""A task is a declaration: tasks/<task>.yaml plus its params block, and nothing else to edit.

In a real repository (a clone of the session's reproduced pipeline): changing, adding or removing one task
re-runs only that task's stages (`dvc status`), and a task generated here, as a user would
bring one (docs/bring-your-own-data.md: 15 fields, a category, names with a slash, spaces, a dot and a leading
digit, a renamed source column), runs through the pipeline, is served (predict, predict_batch, explain,
feedback) and monitored (`make monitor TASK=<task>`) with no other file edited.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer

TASK = "loans"
NUMERIC = [f"x{i:02d}" for i in range(12)]
SLASHED = "income / month"        # a slash and spaces
DOTTED = "2nd.score"               # a leading digit and a dot; the file calls it "second score"
REGION = ("north", "south", "east", "west")


def loans_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """Rows as the raw file has them: the price depends on a few fields, the region and an interaction."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.uniform(0, 10, rows).round(3) for name in NUMERIC})
    frame[SLASHED] = rng.uniform(1_000, 9_000, rows).round(2)
    frame["second score"] = rng.uniform(0, 1, rows).round(4)
    frame["region"] = rng.choice(REGION, rows)
    frame.loc[rng.random(rows) < 0.05, "region"] = None  # optional: sometimes missing
    price = (50 * frame["x00"] + 20 * frame["x01"] * frame["x02"] + 0.05 * frame[SLASHED]
             + 100 * frame["second score"] + frame["region"].map({"north": 80, "south": 0, "east": 40, "west": 20})
             .fillna(30) + rng.normal(0, 10, rows))
    frame["Price (k$)"] = price.round(2)
    return frame


def declaration(md5: str) -> str:
    fields = {name: {"description": f"measurement {name}", "minimum": 0, "maximum": 10} for name in NUMERIC}
    fields[SLASHED] = {"description": "income per month", "minimum": 0, "maximum": 100_000, "unit": "USD"}
    fields[DOTTED] = {"description": "second score", "minimum": 0, "maximum": 1, "column": "second score"}
    fields["region"] = {"description": "sales region", "categories": list(REGION), "optional": True}
    return yaml.safe_dump({
        "kind": "regression",
        "source": {"path": f"data/sources/{TASK}.csv", "md5": md5},
        "fields": fields,
        "target": {"name": "price", "column": "Price (k$)", "description": "loan price", "minimum": 0,
                   "maximum": 100_000, "unit": "thousand USD"},
    }, sort_keys=False)


def declare(repo: PipelineRepo, rows: int = 400) -> None:
    """What a user does: a data file, tasks/<task>.yaml, the task in params.yaml with its block and candidates."""
    source = repo.path / "data" / "sources" / f"{TASK}.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    loans_frame(rows).to_csv(source, index=False)
    (repo.path / "tasks" / f"{TASK}.yaml").write_text(declaration(hashlib.md5(source.read_bytes()).hexdigest()))
    params = repo.params()
    params["tasks"].append(TASK)
    params[TASK] = {"champion": {"metric": "r2", "max_splits_per_row": 50_000},
                    "promotion": {"tolerance": 0.0, "floor": 0.0}, "data": {"min_rows": 100},
                    "features": {}, "explain": {"background_rows": 4}}
    params["candidates"][f"{TASK}-linear"] = {"task": TASK, "estimator": "linear_regression", "scale": True,
                                              "hyperparams": {}}
    params["candidates"][f"{TASK}-tree"] = {"task": TASK, "estimator": "decision_tree_regressor",
                                            "hyperparams": {"max_depth": 6, "min_samples_leaf": 5}}
    repo.write_params(params)


def dry_run(repo: PipelineRepo) -> set[str]:
    """The stages `dvc status` says would run (changed deps or outputs), but check-params: it checks the whole
    params.yaml after any edit, and its output stays the same bytes, so nothing after it runs because of it."""
    status = json.loads(repo.run("dvc", "status", "--json", check=True).stdout or "{}")
    return {name.rpartition(":")[2] for name in status} - {"check-params"}


def test_changing_adding_or_removing_a_task_reruns_only_its_stages(repo: PipelineRepo) -> None:
    assert dry_run(repo) == set()
    iris = repo.path / "tasks" / "iris.yaml"
    original = iris.read_text()
    iris.write_text(original.replace("maximum: 50, unit: cm}", "maximum: 60, unit: cm}", 1))  # a wider bound
    changed = dry_run(repo)
    assert changed and all(stage.endswith("@iris") or stage.startswith("train@iris-") for stage in changed), changed
    iris.write_text(original)
    assert dry_run(repo) == set()

    declare(repo)
    added = dry_run(repo)
    assert {f"fetch@{TASK}", f"train@{TASK}-tree", f"package@{TASK}"} <= added
    assert all(stage.endswith(f"@{TASK}") or stage.startswith(f"train@{TASK}-") for stage in added), added

    params = repo.params()
    params["tasks"].remove("iris")
    params["candidates"] = {name: spec for name, spec in params["candidates"].items() if spec["task"] != "iris"}
    del params["iris"]
    repo.write_params(params)
    assert all(stage.endswith(f"@{TASK}") or stage.startswith(f"train@{TASK}-") for stage in dry_run(repo))
    assert not any("housing" in stage or "iris" in stage for stage in dry_run(repo))


def test_a_bring_your_own_data_task_is_trained_served_and_monitored(repo: PipelineRepo, tmp_path: Path) -> None:
    untracked_before = set(repo.git("ls-files", "--others", "--exclude-standard").split())
    declare(repo, rows=600)
    edited = repo.git("diff", "--stat").strip().splitlines()
    assert [line.split("|")[0].strip() for line in edited[:-1]] == ["params.yaml"], edited
    untracked = set(repo.git("ls-files", "--others", "--exclude-standard").split()) - untracked_before
    assert untracked == {f"tasks/{TASK}.yaml", f"data/sources/{TASK}.csv"}

    repo.repro(f"package@{TASK}")
    tags = repo.json(f"models/{TASK}/bento_tags.json")
    assert tags["champion"].startswith(f"{TASK}-regressor:")
    metrics = repo.json(f"metrics/{TASK}.json")
    assert metrics["champion"] in {f"{TASK}-linear", f"{TASK}-tree"}, metrics
    assert metrics["metric"] == "r2" and metrics["test"] > 0.5, metrics
    repo.save_served_set()

    code = subprocess.run(["git", "diff", "--name-only", "HEAD"], cwd=repo.path, capture_output=True, text=True,
                          check=True).stdout.split()
    assert [path for path in code if path.endswith((".py", ".yml", "Makefile", "dvc.yaml"))] == [], code

    log_dir = tmp_path / "log"
    server = LiveServer("bento_service.service:PredictionService", log_dir, cwd=repo.path,
                        env={"SERVED_MODELS": str(repo.path), "BENTOML_HOME": str(repo.bentoml_home)})
    try:
        server.wait_ready(timeout=180)
        frame = loans_frame(400, seed=11).rename(columns={"second score": DOTTED}).drop(columns="Price (k$)")
        records = [{key: value for key, value in row.items() if not (key == "region" and pd.isna(value))}
                   for row in frame.to_dict(orient="records")]
        answer = requests.post(f"{server.url}/{TASK}/predict", json=records[0], timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body["price"], float), body  # the answer is named after the target
        assert body["model"] == tags["champion"]

        wrong = requests.post(f"{server.url}/{TASK}/predict", json={**records[0], SLASHED: -1}, timeout=30)
        assert wrong.status_code == 400 and SLASHED in wrong.text, wrong.text

        batch = requests.post(f"{server.url}/{TASK}/predict_batch", json={"records": records[1:300]}, timeout=60)
        assert batch.status_code == 200, batch.text
        assert len(batch.json()["predictions"]) == 299

        explained = requests.post(f"{server.url}/{TASK}/explain", json=records[0], timeout=60)
        assert explained.status_code == 200, explained.text
        contributions = explained.json()["contributions"]
        assert set(contributions) == {*NUMERIC, SLASHED, DOTTED, "region"}
        assert explained.json()["prediction"] == pytest.approx(body["price"])
        assert sum(contributions.values()) == pytest.approx(body["price"] - explained.json()["base_value"])
        described = requests.get(f"{server.url}/model", timeout=30).json()[TASK]
        assert described["explainer"]["method"] == "sampled", described  # 15 fields: above max_exact_fields

        feedback = requests.post(f"{server.url}/{TASK}/feedback",
                                 json={"request_id": body["request_id"], "actual": 321.0}, timeout=30)
        assert feedback.status_code == 200 and feedback.json()["status"] == "stored", feedback.text
    finally:
        server.stop()

    monitor = repo.make("monitor", f"TASK={TASK}", check=False, env={"PREDICTION_LOG_DIR": str(log_dir)})
    assert monitor.returncode == 0, monitor.output[-3000:]
    assert TASK in monitor.output
    reports = list((repo.path / "reports").glob(f"*{TASK}*"))
    assert reports, sorted((repo.path / "reports").iterdir()) if (repo.path / "reports").exists() else "no reports"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(kind="ranking"), "kind: expected regression or classification"),
    (lambda d: d["fields"]["x00"].pop("maximum"), "fields.x00: a numeric field needs minimum and maximum"),
    (lambda d: d["fields"]["region"].update(categories=["north"]), "fields.region.categories"),
    (lambda d: d["source"].update(md5="nope"), "source.md5: expected 32 hexadecimal digits"),
    (lambda d: d["fields"]["x01"].update(colour="red"), "fields.x01: unknown key 'colour'"),
])
def test_a_broken_declaration_stops_the_first_stage_naming_file_and_key(repo: PipelineRepo, change,
                                                                      message: str) -> None:
    declare(repo)
    path = repo.path / "tasks" / f"{TASK}.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = repo.repro(f"fetch@{TASK}", check=False)
    assert result.returncode != 0
    assert f"tasks/{TASK}.yaml" in result.output and message in result.output, result.output[-2000:]
    assert "Traceback" not in result.output
