"""Same code, data and params give byte-identical outputs at any path, on any number of cores.

The session's pipeline repository was reproduced on all cores; here the same pipeline is reproduced from
nothing in another directory, pinned to one core (`taskset`), with its own DVC cache, MLflow store and
BentoML store. Every output DVC hashes, the lock as a whole and every git-tracked metric must be the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.dvc_repo import PipelineRepo
from tests.support.tasks import served_set


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_another_path_and_one_core_give_identical_outputs(built_repo: PipelineRepo, tmp_path: Path) -> None:
    other = PipelineRepo.create(tmp_path / "elsewhere" / "deeper" / "repo", built_repo.housing_csv,
                                params=built_repo.params(), bentoml_home=tmp_path / "bentoml-home")
    other.run("taskset", "-c", "0", "dvc", "repro", check=True)

    first, second = (yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"] for repo in (built_repo, other))
    assert set(first) == set(second)
    for stage in first:
        assert first[stage]["outs"] == second[stage]["outs"], f"{stage} gave other outputs"
    assert (built_repo.path / "dvc.lock").read_text() == (other.path / "dvc.lock").read_text()
    metrics = sorted(path.relative_to(built_repo.path) for path in (built_repo.path / "metrics").rglob("*.json"))
    assert metrics, "no metrics files to compare"
    for relative in metrics:
        assert (other.path / relative).read_bytes() == (built_repo.path / relative).read_bytes(), relative
    assert served_set(other.path) == served_set(built_repo.path)
