"""What is served is what the pipeline decided, in a real repository with a real MLflow registry and real servers.

The README's sequence, with the project's Makefile: `make run` -> `dvc exp run` of a change that would promote
(no alias moves, nothing is registered, the served set on main is untouched) -> back on main -> adopt it
(`dvc exp apply`, `make run`: released) -> `make rollback` -> serve. After each step: the registry's aliases, the
served tag (GET /model and the answer), and the answer to the README's record against the served champion's own
in-process prediction and `models:/housing-regressor@champion` through MLflow, to the cent. Also: two queued
experiments run by `dvc queue start` change no alias, register no version and leave the served set as it was.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.support.clients import post_json
from tests.support.dvc_repo import PipelineRepo, ran_stages
from tests.support.live_server import LiveServer
from tests.support.readme import housing_record

MODEL = "housing-regressor"
CENT = 0.005
# A housing-only change every candidate feels (the feature code's out-of-fold means), with a tolerance that lets
# any newcomer through: the gate would promote whatever evaluate chooses.
WOULD_PROMOTE = ["-S", "housing.features.neighbor_folds=4", "-S", "housing.promotion.tolerance=1.0"]

MLFLOW_PREDICT = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/housing-regressor@champion")
print(json.dumps(float(model.predict(pd.DataFrame([json.loads(sys.argv[2])]))[0])))
"""


def registry(repo: PipelineRepo) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")


def aliases(repo: PipelineRepo) -> dict[str, str]:
    return dict(registry(repo).get_registered_model(MODEL).aliases)


def versions(repo: PipelineRepo) -> set[str]:
    return {v.version for v in registry(repo).search_model_versions(f"name = '{MODEL}'")}


def served_tag(repo: PipelineRepo) -> str:
    return repo.json("models/housing/bento_tags.json")["champion"]


def in_process(repo: PipelineRepo) -> float:
    """The served champion file's own prediction for the README's record."""
    model = joblib.load(repo.path / "models/housing/served/champion.joblib")
    return float(model.predict(pd.DataFrame([housing_record()]))[0])


def through_mlflow(repo: PipelineRepo) -> float:
    """`models:/housing-regressor@champion` loaded through MLflow, in a process that sees only the store."""
    out = subprocess.run([sys.executable, "-c", MLFLOW_PREDICT, f"sqlite:///{repo.path / 'mlflow.db'}",
                          json.dumps(housing_record())], capture_output=True, text=True, timeout=300, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def serve(repo: PipelineRepo, logs: Path) -> tuple[dict, dict]:
    """The Bento `make bento` built (.bento-tag), served live: its answer to the README's record and GET /model."""
    bento = (repo.path / ".bento-tag").read_text().strip()
    server = LiveServer(bento, logs, cwd=repo.path, env={"BENTOML_HOME": str(repo.bentoml_home)})
    try:
        server.wait_ready(timeout=180)
        answer = post_json(f"{server.url}/housing/predict", housing_record())
        info = httpx.get(f"{server.url}/model", timeout=30).json()
    finally:
        server.stop()
    return answer, info


def experiments(repo: PipelineRepo) -> dict[str, dict[str, str]]:
    """`dvc exp show --csv`, one row per experiment name (workspace and baselines under their rev)."""
    shown = repo.run("dvc", "exp", "show", "--csv", check=True).stdout
    return {row["Experiment"] or row["rev"]: row for row in csv.DictReader(io.StringIO(shown))}


def wait_for_queue(repo: PipelineRepo, timeout: float = 1500) -> str:
    """`dvc queue status` until nothing is queued or running; its last output."""
    deadline = time.monotonic() + timeout
    while True:
        status = repo.run("dvc", "queue", "status", check=True).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(5)


def check_served(repo: PipelineRepo, logs: Path) -> float:
    """The Bento serves exactly the served set's champion, the registry's champion, and answers as it does."""
    answer, info = serve(repo, logs)
    tag, champion = served_tag(repo), registry(repo).get_model_version_by_alias(MODEL, "champion")
    assert answer["model"] == info["housing"]["tag"] == tag
    assert info["housing"]["mlflow_model_version"] == str(champion.version)
    assert info["housing"]["mlflow_run_id"] == champion.run_id
    assert abs(answer["prediction"] - in_process(repo)) < CENT
    assert abs(answer["prediction"] - through_mlflow(repo)) < CENT
    return answer["prediction"]


def test_experiments_release_and_rollback_change_what_is_served_only_when_asked(repo: PipelineRepo,
                                                                                tmp_path: Path) -> None:
    repo.make("run")  # the clone's `make run`: already reproduced and released, so this builds its Bento
    released, registered = aliases(repo), versions(repo)
    tag_main = served_tag(repo)
    answer_main = check_served(repo, tmp_path / "main")

    # An experiment that would promote: its verdict is in its metrics; nothing shared moves.
    exp = repo.run("dvc", "exp", "run", "-n", "promote-it", *WOULD_PROMOTE, check=True)
    assert "promote@housing" in ran_stages(exp.output)
    verdict = repo.json("metrics/promotion/housing.json")
    assert verdict["verdict"] == "would promote", verdict
    assert experiments(repo)["promote-it"]["metrics/promotion/housing.json:verdict"] == "would promote"
    assert aliases(repo) == released and versions(repo) == registered

    # Back on main: the committed served set, answer and aliases.
    repo.git("checkout", ".")
    repo.repro()
    assert served_tag(repo) == tag_main and repo.git("status", "--porcelain").strip() == ""
    repo.make("bento")
    assert check_served(repo, tmp_path / "back") == answer_main and aliases(repo) == released

    # Adopted: applied, released by `make run`, served.
    repo.run("dvc", "exp", "apply", "promote-it", check=True)
    run = repo.make("run").output
    tag_new = served_tag(repo)
    moved = aliases(repo)
    assert tag_new != tag_main and moved["champion"] not in released.values()
    assert moved["previous-champion"] == released["champion"]
    assert f"release housing: champion -> version {moved['champion']}" in run
    answer_new = check_served(repo, tmp_path / "adopted")
    assert abs(answer_new - answer_main) >= CENT, "the two champions agree: the check would prove nothing"

    # Rolled back: the previous champion's own tag and answer are served again; the aliases say so.
    rolled = repo.make("rollback", "TASK=housing").output
    after = aliases(repo)
    assert after == {"champion": released["champion"], "challenger": moved["champion"]}
    assert f"champion {released['champion']} " in rolled and "previous-champion none" in rolled
    assert served_tag(repo) == tag_main
    assert check_served(repo, tmp_path / "rolled-back") == pytest.approx(answer_main, abs=CENT)

    again = repo.make("rollback", "TASK=housing", check=False)
    assert again.returncode != 0 and "no previous champion" in again.output and "nothing changed" in again.output
    assert aliases(repo) == after and served_tag(repo) == tag_main


def test_queued_experiments_move_no_alias_and_change_no_served_model(repo: PipelineRepo) -> None:
    repo.save_served_set()
    work_tree = repo.git("status", "--porcelain")
    store = sorted(p.name for p in (repo.bentoml_home / "models").glob("*/*") if p.name != "latest")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")
    before = {name: (dict(client.get_registered_model(name).aliases),
                     {v.version for v in client.search_model_versions(f"name = '{name}'")})
              for name in ("housing-regressor", "iris-classifier")}
    for solver in ("lsqr", "eigen"):  # another iris champion each (same accuracy, other model file): would promote
        repo.run("dvc", "exp", "run", "--queue", "-n", f"lda-{solver}", "-S", "iris.promotion.tolerance=1.0",
                 "-S", f"+candidates.iris-lda.hyperparams.solver={solver}", check=True)
    repo.run("dvc", "queue", "start", check=True)
    status = wait_for_queue(repo)
    assert status.count("Success") == 2, status
    shown = experiments(repo)
    for name in ("lda-lsqr", "lda-eigen"):
        assert shown[name]["metrics/promotion/iris.json:verdict"] == "would promote", shown[name]
    assert repo.git("status", "--porcelain") == work_tree  # the workspace, its served set included, as it was
    assert "models/housing/bento_tags.json" not in work_tree
    after = {name: (dict(client.get_registered_model(name).aliases),
                    {v.version for v in client.search_model_versions(f"name = '{name}'")})
             for name in ("housing-regressor", "iris-classifier")}
    assert after == before
    assert sorted(p.name for p in (repo.bentoml_home / "models").glob("*/*") if p.name != "latest") == store
