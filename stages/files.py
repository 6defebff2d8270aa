"""Files of the pipeline: outputs written all-or-nothing, JSON in and out, content checksums.

A failed or killed stage never leaves a half-written file: everything is written beside its
destination first and renamed into place, which is atomic on one filesystem. The temporary is
named `.<name>.tmp-<pid>-...` (ignored by DVC, .dvcignore), gets the umask's permissions when it is
created, not only when it is renamed (a killed stage's leftover is not private to one user), and
is removed by the next write to the same destination once its process is gone.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def _temporary_prefix(destination: Path) -> str:
    return f".{destination.name}{TMP_MARK}{os.getpid()}-"


def remove_stale_temporaries(destination: Path) -> None:
    """Delete what killed writers of `destination` left beside it (their process no longer exists)."""
    for leftover in destination.parent.glob(f".{destination.name}{TMP_MARK}*"):
        pid = leftover.name[len(destination.name) + 1 + len(TMP_MARK):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    return True


@contextmanager
def atomic_path(destination: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on success rename it into place."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(destination)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(destination), dir=destination.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 would make the output private to this user
        with _naming(destination):
            yield tmp_path
        os.replace(tmp_path, destination)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(destination: Path | str) -> Iterator[Path]:
    """Yield a temporary directory beside `destination`; on success it replaces `destination`."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(destination)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(destination), dir=destination.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700, as above
        with _naming(destination):
            yield tmp
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _naming(destination: Path) -> Iterator[None]:
    """A full disk while writing an output names the output: writes through an open file (joblib, pandas) raise
    ENOSPC without a file name, and the stage's one-line message (stages/failures.py) shows the name."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC or exc.filename:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(destination)) from exc


def _umask() -> int:
    """The process's umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(destination: Path | str, data: Any) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def md5sum(path: Path | str) -> str:
    """md5 of a file's bytes, the checksum DVC records for it."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
