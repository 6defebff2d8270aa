"""A disk that fills during `dvc repro` (a real tmpfs, a few megabytes free): the stage that hits it ends the run
with one line naming the path, no traceback, no later stage runs; once space is freed `dvc repro` completes and
gives the committed dvc.lock back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dvc_repo import PipelineRepo, ran_stages

HEADROOM = 2 << 20  # free bytes left: enough for DVC's own lock and state, not for the retrained model


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.fixture
def small_disk(built_repo: PipelineRepo, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs just larger than a copy of the session's repository (root only: mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    size_mb = _size(built_repo.path) // (1 << 20) + 24
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of the disk's free space."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "wb") as fh:
        fh.truncate(0)
        chunk = b"\0" * (1 << 20)
        while free > 0:
            fh.write(chunk[: min(len(chunk), free)])
            free -= len(chunk)
    return filler


def test_a_full_disk_stops_the_run_in_one_line_and_the_rerun_completes(built_repo: PipelineRepo,
                                                                       small_disk: Path) -> None:
    repo = built_repo.clone_to(small_disk / "repo")
    committed = (repo.path / "dvc.lock").read_bytes()
    params = repo.params()
    params["candidates"]["housing-forest"]["hyperparams"].update(n_estimators=600, min_samples_leaf=1)
    repo.write_params(params)  # a much larger model file than the one committed
    filler = fill(small_disk, HEADROOM)

    result = repo.repro("train@housing-forest", "evaluate@housing", check=False)

    assert result.returncode != 0, result.output[-3000:]
    assert "Traceback" not in result.output, result.output[-4000:]
    lines = [line for line in result.output.splitlines() if "no space left on device" in line.lower()]
    assert any(line.startswith("train@housing-forest: no space left on device writing ") for line in lines), \
        result.output[-3000:]
    assert "evaluate@housing" not in ran_stages(result.output)

    filler.unlink()
    repo.git("checkout", "params.yaml")
    repo.repro()
    assert (repo.path / "dvc.lock").read_bytes() == committed
    assert repo.run("dvc", "status", "-q").returncode == 0
