"""Stage `promote@housing` (the gate) and `make release` against a real SQLite MLflow registry in a real DVC
repository, and `make rollback`'s steps: first -> released, a better newcomer -> would promote (nothing moves until
released; challenger = runner-up), a worse one -> would keep (exit 0, one-line reason), rollback -> the older model
is the registry's and the Bento store's champion, and a live `bentoml serve` of the rebuilt Bento answers with the
older model's predictions. A verdict made against another champion is refused by release.

The session's reproduced pipeline is cloned and its registry emptied; "weak" params make two depth-limited trees
the only candidates (quick to train, clearly worse than the session's champion on the generated data).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from tests.support.clients import post_json
from tests.support.dvc_repo import PipelineRepo
from tests.support.live_server import LiveServer

MODEL = "housing-regressor"


def weak(params: dict) -> dict:
    out = copy.deepcopy(params)
    out["candidates"] = {name: spec for name, spec in out["candidates"].items() if spec["task"] != "housing"}
    out["candidates"]["housing-stump"] = {"task": "housing", "estimator": "decision_tree_regressor",
                                          "hyperparams": {"max_depth": 1}}
    out["candidates"]["housing-shallow"] = {"task": "housing", "estimator": "decision_tree_regressor",
                                            "hyperparams": {"max_depth": 2}}
    out["housing"]["promotion"]["floor"] = 0.0  # weak on purpose: the floor is test_guardrails.py's
    return out


def gate(repo: PipelineRepo) -> str:
    """What a user runs after the registry may have changed: the gate forced, then everything downstream."""
    repo.repro("evaluate@housing")  # trains what the params need (or restores it from the run cache) ...
    repo.repro("-f", "-s", "evaluate@housing")  # ... and logs the runs into this (emptied) registry even then
    output = repo.repro("-f", "-s", "promote@housing").output
    repo.repro()
    return output


def aliases(client: MlflowClient) -> dict[str, str]:
    return dict(client.get_registered_model(MODEL).aliases) if client.search_registered_models() else {}


def candidate_of(client: MlflowClient, version: str) -> str:
    return client.get_run(client.get_model_version(MODEL, version).run_id).data.tags["candidate"]


STORE_CHECK = """
import json, sys
import bentoml, joblib, pandas as pd
tags = json.load(open("models/housing/bento_tags.json"))
champion, challenger = bentoml.models.get(tags["champion"]), bentoml.models.get(tags["challenger"])
rows = pd.read_csv("data/prepared/housing/test.csv").head(20).drop(columns="median_house_value")
older = joblib.load(sys.argv[1]) if len(sys.argv) > 1 else None
print(json.dumps({"champion": dict(champion.info.metadata), "challenger": dict(challenger.info.metadata),
                  "challenger_objects": sorted(challenger.custom_objects),
                  "same_predictions": None if older is None else bool(
                      (bentoml.sklearn.load_model(champion.tag).predict(rows) == older.predict(rows)).all())}))
"""


def store(repo: PipelineRepo, *args: str) -> dict:
    """The served set as `make store` saves it in the repository's BentoML store (read in a subprocess)."""
    repo.save_served_set()
    return json.loads(repo.run("python", "-c", STORE_CHECK, *args, check=True).stdout.splitlines()[-1])


def test_gate_decides_release_promotes_and_rollback_restores(repo: PipelineRepo, tmp_path: Path) -> None:
    (repo.path / "mlflow.db").unlink()  # an empty registry: a fresh clone, where nothing was released
    (repo.path / "models/housing/released.json").unlink()
    client = MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")
    full = repo.params()

    repo.write_params(weak(full))
    output = gate(repo)
    promotion = repo.json("metrics/promotion/housing.json")
    assert promotion["verdict"] == "would promote" and promotion["incumbent"] is None
    assert "promote housing: would promote: no model holds the champion alias yet (test r2" in output
    roles = (promotion["champion"]["candidate"], promotion["challenger"]["candidate"])
    assert roles == ("housing-shallow", "housing-stump")
    assert aliases(client) == {} and not client.search_model_versions()  # the gate itself moves and registers nothing
    released = repo.release("housing").output
    first = aliases(client)
    assert set(first) == {"champion", "challenger"} and candidate_of(client, first["champion"]) == "housing-shallow"
    assert f"champion {first['champion']} (housing-shallow), challenger {first['challenger']} (housing-stump)" \
        in released
    assert "already released, nothing changed" in repo.release("housing").output and aliases(client) == first
    rechecked = repo.repro("-f", "-s", "promote@housing").output  # the champion re-checked: said as it is
    assert f"the newcomer housing-shallow is the registry's champion already (version {first['champion']})" in rechecked
    assert "no model holds" not in rechecked and repo.json("metrics/promotion/housing.json") == promotion

    repo.write_params(full)
    gate(repo)
    promotion = repo.json("metrics/promotion/housing.json")
    best = repo.json("models/housing/champion.json")["candidate"]
    assert promotion["verdict"] == "would promote" and promotion["champion"]["candidate"] == best
    assert aliases(client) == first  # not released yet
    repo.release("housing")
    moved = aliases(client)
    assert candidate_of(client, moved["champion"]) == best
    assert moved["previous-champion"] == first["champion"]
    assert candidate_of(client, moved["challenger"]) == promotion["challenger"]["candidate"] != best
    packaged = store(repo)
    assert packaged["champion"]["role"] == "champion" and packaged["champion"]["candidate"] == best
    assert packaged["challenger"]["role"] == "challenger"
    assert packaged["challenger"]["candidate"] == promotion["challenger"]["candidate"]
    assert str(packaged["challenger"]["mlflow_model_version"]) == str(moved["challenger"])
    assert packaged["challenger_objects"] == ["compiled", "reference"]

    repo.write_params(weak(full))
    output = gate(repo)
    promotion = repo.json("metrics/promotion/housing.json")
    assert promotion["verdict"] == "would keep" and "more than the tolerance" in promotion["reason"]
    assert "promote housing: would keep:" in output
    repo.release("housing")
    assert aliases(client)["champion"] == moved["champion"]  # unmoved
    assert candidate_of(client, aliases(client)["challenger"]) == "housing-shallow"  # the rejected newcomer
    assert repo.json("models/housing/served/served.json")["champion"]["candidate"] == best

    repo.write_params(full)
    rolled = repo.run("python", "-m", "stages.rollback", "housing", check=True).output
    assert aliases(client) == {"champion": first["champion"], "challenger": moved["champion"]}
    assert f"champion {first['champion']} (housing-shallow), challenger {moved['champion']} ({best}), " \
           "previous-champion none" in rolled
    assert client.get_model_version(MODEL, moved["champion"]).tags["rolled_back"] == "true"
    gate(repo)
    promotion = repo.json("metrics/promotion/housing.json")
    assert promotion["verdict"] == "would keep" and "rolled back" in promotion["reason"]
    assert "already released, nothing changed" in repo.release("housing").output
    packaged = store(repo, "models/housing/candidates/housing-shallow/model.joblib")
    assert packaged["champion"]["candidate"] == "housing-shallow" and packaged["same_predictions"]
    assert str(packaged["champion"]["mlflow_model_version"]) == str(first["champion"])

    assert served_predictions(repo, tmp_path, "models/housing/candidates/housing-shallow/model.joblib", best)

    before = aliases(client)
    again = repo.run("python", "-m", "stages.rollback", "housing")
    assert again.returncode != 0 and "no previous champion" in again.output and "nothing changed" in again.output
    assert aliases(client) == before


def test_release_refuses_a_verdict_made_against_another_champion(repo: PipelineRepo) -> None:
    """The registry moved after the gate ran (a teammate released): the stale verdict is not applied."""
    client = MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")
    before = aliases(client)
    verdict = repo.json("metrics/promotion/housing.json")
    stale = {**verdict, "verdict": "would promote", "incumbent": {**verdict["champion"], "model_md5": "0" * 32},
             "champion": verdict["challenger"]}
    (repo.path / "metrics/promotion/housing.json").write_text(json.dumps(stale))
    served = repo.json("models/housing/served/served.json")
    (repo.path / "models/housing/served/served.json").write_text(json.dumps(
        {**served, "champion": served["challenger"]}))
    result = repo.run("python", "-m", "stages.release", "housing")
    assert result.returncode == 1 and "refused, nothing changed" in result.output
    assert "re-run the gate: `dvc repro -f -s promote@housing" in result.output
    assert aliases(client) == before


def served_predictions(repo: PipelineRepo, tmp_path: Path, older: str, newer: str) -> bool:
    """The rolled-back Bento, built and served live: it answers with the older model, not the newer one."""
    test = pd.read_csv(repo.path / "data/prepared/housing/test.csv").head(20)
    rows = test.drop(columns="median_house_value")
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
               for row in rows.to_dict(orient="records")]
    expected = joblib.load(repo.path / older).predict(rows)
    newer_predictions = joblib.load(repo.path / f"models/housing/candidates/{newer}/model.joblib").predict(rows)
    assert np.max(np.abs(expected - newer_predictions)) > 1000, "the two models agree: the check would prove nothing"
    server = LiveServer(repo.build_bento(), tmp_path / "prediction-logs", cwd=repo.path,
                        env={"BENTOML_HOME": str(repo.bentoml_home)})
    try:
        server.wait_ready(timeout=180)
        answers = [post_json(f"{server.url}/housing/predict", record) for record in records]
    finally:
        server.stop()
    assert {answer["model"] for answer in answers} == {repo.json("models/housing/bento_tags.json")["champion"]}
    np.testing.assert_allclose([answer["prediction"] for answer in answers], expected, rtol=0, atol=1.0)
    return True
