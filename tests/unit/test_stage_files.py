"""Stage outputs written all-or-nothing: a temporary is never private (0600/0700), not even while it is being
written (a stage killed then leaves it behind), and a dead writer's leftover is removed by the next write."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stages.files import TMP_MARK, atomic_dir, atomic_path


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_temporaries_have_the_umask_permissions_while_being_written(tmp_path: Path, umask_022: None) -> None:
    with atomic_dir(tmp_path / "candidates" / "hgb") as out:
        assert _mode(out) == 0o755, "a stage killed here would leave a 0700 directory"
        with atomic_path(out / "model.joblib") as model:
            assert _mode(model) == 0o644
            model.write_bytes(b"model")
    assert _mode(tmp_path / "candidates" / "hgb") == 0o755
    assert _mode(tmp_path / "candidates" / "hgb" / "model.joblib") == 0o644
    assert [p.name for p in (tmp_path / "candidates").iterdir()] == ["hgb"]


def test_a_dead_writers_leftover_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    destination = tmp_path / "hgb"
    dead = tmp_path / f".hgb{TMP_MARK}999999999-abc"  # no such pid
    dead.mkdir()
    (dead / "model.joblib").write_bytes(b"half")
    live = tmp_path / f".hgb{TMP_MARK}{os.getppid()}-def"
    live.mkdir()
    with atomic_dir(destination) as out:
        (out / "summary.json").write_text("{}")
    assert not dead.exists() and live.exists()
    assert (destination / "summary.json").read_text() == "{}"


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "hgb") as out:
        (out / "model.joblib").write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
