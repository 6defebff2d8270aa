"""Team mode over a real SSH DVC remote: a teammate pulls what another pushed instead of retraining.

The remote is Debian's sshd on a free 127.0.0.1 port with keys generated for the test (tests/support/sshd.py)
and DVC's own SSH plugin (dvc-ssh). Alice's repository is the session's reproduced pipeline (a clone); Bob's
is a fresh `git clone` of hers in another directory, with his own key, his own BentoML store and no raw data
at all (HOUSING_CSV points nowhere, so a stage that needed to fetch would fail). The pipeline is
byte-for-byte reproducible, which is what makes Alice's cache valid for Bob.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd
import pytest

from stages.files import md5sum
from tests.support.clients import post_json
from tests.support.dvc_repo import PipelineRepo, ran_stages
from tests.support.live_server import LiveServer
from tests.support.sshd import SshServer, generate_key, require_sshd

REMOTE = "team"
# The README's example block group (ints where the census file has whole numbers).
RECORD = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
          "total_bedrooms": 129, "population": 322, "households": 126, "median_income": 8.3252,
          "ocean_proximity": "NEAR BAY"}
UP_TO_DATE = "Data and pipelines are up to date."


@dataclass
class SshRemote:
    server: SshServer
    storage: Path  # the remote's directory on the server
    alice: Path  # private keys; both authorized
    bob: Path
    stranger: Path  # a key the server does not know

    @property
    def url(self) -> str:
        return self.server.url(self.storage)


@pytest.fixture
def ssh_remote(tmp_path: Path) -> Iterator[SshRemote]:
    require_sshd()
    keys = tmp_path / "keys"
    keys.mkdir()
    server = SshServer(tmp_path / "sshd")
    remote = SshRemote(server, tmp_path / "remote-storage", generate_key(keys / "alice"),
                       generate_key(keys / "bob"), generate_key(keys / "stranger"))
    remote.storage.mkdir()
    server.authorize(remote.alice)
    server.authorize(remote.bob)
    server.start()
    try:
        yield remote
    finally:
        server.stop()


def use_remote(repo: PipelineRepo, url: str | None, key: Path) -> None:
    """What README "Team setup" tells a user: the remote in .dvc/config (committed), the key in config.local."""
    if url is not None:
        repo.run("dvc", "remote", "add", "-d", REMOTE, url, check=True)
    repo.run("dvc", "remote", "modify", "--local", REMOTE, "keyfile", str(key), check=True)


def set_tree_depth(repo: PipelineRepo, depth: int) -> None:
    params = repo.params()
    params["candidates"]["housing-tree"]["hyperparams"]["max_depth"] = depth
    repo.write_params(params)


def git_clone(repo: PipelineRepo, path: Path) -> PipelineRepo:
    """A teammate's fresh clone: git only, an empty DVC cache, no raw data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(repo.path), str(path)], check=True, timeout=60)
    return PipelineRepo(path, housing_csv=path.parent / "no-raw-data.csv", bentoml_home=path.parent / "bentoml")


def test_a_teammate_pulls_the_pipeline_and_the_run_cache_instead_of_training(
        repo: PipelineRepo, ssh_remote: SshRemote, tmp_path: Path) -> None:
    alice = repo
    trained_depth = alice.params()["candidates"]["housing-tree"]["hyperparams"]["max_depth"]
    other_depth = trained_depth // 2
    use_remote(alice, ssh_remote.url, ssh_remote.alice)
    alice.commit_all("team remote")
    # Alice tries another depth and pushes, then goes back (DVC restores her own run) and pushes again. DVC 3
    # pushes the run cache's entries but only the outputs the workspace holds: push after every run you share.
    set_tree_depth(alice, other_depth)
    assert "train@housing-tree" in ran_stages(alice.repro().output)
    other_model = md5sum(alice.path / "models/housing/candidates/housing-tree/model.joblib")
    alice.run("dvc", "push", "--run-cache", check=True)
    set_tree_depth(alice, trained_depth)
    # all from the run-cache; only `package@housing` runs if the tree is served (the small pipeline's challenger): its
    # output, models/<task>/bento_tags.json, is git-tracked, not cached, so DVC cannot restore it
    served = {alice.json("models/housing/served/served.json")[role]["candidate"] for role in ("champion", "challenger")}
    assert ran_stages(alice.repro().output) == ({"package@housing"} if "housing-tree" in served else set())
    pushed = alice.run("dvc", "push", "--run-cache", check=True)
    assert "pushed" in pushed.output or "Everything is up to date" in pushed.output, pushed.output
    assert any(ssh_remote.storage.rglob("*")), "nothing arrived on the SSH server"

    bob = git_clone(alice, tmp_path / "bob" / "repo")
    assert not (bob.path / "models" / "housing" / "champion.joblib").exists()
    use_remote(bob, None, ssh_remote.bob)  # the remote came with the clone; the key is Bob's own
    started = time.monotonic()
    pulled = bob.run("dvc", "pull", check=True)
    pull_s = time.monotonic() - started
    assert "added" in pulled.output or "fetched" in pulled.output, pulled.output

    # Nothing to train, nothing stale: every output came from Alice's cache.
    assert ran_stages(bob.repro().output) == set()
    assert UP_TO_DATE in bob.run("dvc", "status", check=True).output
    for relative in ("models/housing/champion.joblib", "models/iris/champion.joblib", "models/housing/reference.json"):
        assert (bob.path / relative).read_bytes() == (alice.path / relative).read_bytes(), relative
    assert bob.json("metrics/housing.json") == alice.json("metrics/housing.json")

    # The Bento builds and serves from Bob's own store: `make bento` fills it with the pulled served set.
    bob.save_served_set()
    assert UP_TO_DATE in bob.run("dvc", "status", check=True).output
    server = LiveServer(bob.build_bento(), tmp_path / "bob" / "prediction-logs", cwd=bob.path,
                        env={"BENTOML_HOME": str(bob.bentoml_home)})
    try:
        server.wait_ready(timeout=180)
        answer = post_json(f"{server.url}/housing/predict", RECORD)
    finally:
        server.stop()
    assert answer["model"] == bob.json("models/housing/bento_tags.json")["champion"]
    expected = joblib.load(alice.path / "models/housing/champion.joblib").predict(pd.DataFrame([RECORD]))[0]
    assert answer["prediction"] == pytest.approx(expected, abs=1.0)

    # A value Alice trained earlier: restored from the shared run cache (`--pull`: fetch the entries and the
    # outputs they need), not trained again. evaluate@housing runs (scoring, no training): its metrics are
    # git-tracked (cache: false), and DVC pushes run-cache entries but never uncached outputs; the gate and
    # package run too, for the same reason.
    set_tree_depth(bob, other_depth)
    restored = bob.repro("--pull")
    # what runs scores, gates and packages (their outputs are git-tracked, not cached, and the gate reads Bob's own
    # registry); nothing trains, profiles, compiles or explains: those come from the run cache
    assert ran_stages(restored.output) <= {"evaluate@housing", "promote@housing", "package@housing"}, restored.output
    assert "Stage 'train@housing-tree' is cached - skipping run, checking out outputs" in restored.output
    assert md5sum(bob.path / "models/housing/candidates/housing-tree/model.joblib") == other_model
    assert UP_TO_DATE in bob.run("dvc", "status", check=True).output
    print(f"\ndvc pull from the SSH remote: {pull_s:.1f} s; bob: {time.monotonic() - started:.1f} s")


def test_without_a_reachable_remote_the_pipeline_still_runs_and_pull_says_why(
        repo: PipelineRepo, ssh_remote: SshRemote, tmp_path: Path) -> None:
    """No remote, an unreachable one, a key the server refuses: `dvc repro` needs none of them; `dvc pull` fails
    with DVC's own message."""
    no_remote = git_clone(repo, tmp_path / "no-remote" / "repo").run("dvc", "pull")
    assert no_remote.returncode != 0, no_remote.output
    assert "No remote provided and no default remote set" in no_remote.output, no_remote.output

    closed = SshServer(tmp_path / "closed")  # never started: nothing listens on its port
    use_remote(repo, closed.url(ssh_remote.storage), ssh_remote.alice)
    repo.commit_all("a remote that is down")
    set_tree_depth(repo, 3)  # `make run` is `dvc repro`: it trains with the remote down
    assert "train@housing-tree" in ran_stages(repo.repro().output)

    teammate = git_clone(repo, tmp_path / "teammate" / "repo")
    use_remote(teammate, None, ssh_remote.bob)
    unreachable = teammate.run("dvc", "pull")
    assert unreachable.returncode != 0, unreachable.output
    assert "ERROR" in unreachable.output and "Connect call failed" in unreachable.output, unreachable.output

    teammate.run("dvc", "remote", "modify", "--local", REMOTE, "url", ssh_remote.url, check=True)
    teammate.run("dvc", "remote", "modify", "--local", REMOTE, "keyfile", str(ssh_remote.stranger), check=True)
    refused = teammate.run("dvc", "pull")
    assert refused.returncode != 0, refused.output
    assert "Permission denied" in refused.output, refused.output
    print(f"\nunreachable: {unreachable.output.strip()}\nrefused key: {refused.output.strip()}")
