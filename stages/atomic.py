"""Write outputs all-or-nothing: a failed or killed stage never leaves a half-written file.

Everything is written beside its destination first and renamed into place, which is atomic on
one filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(destination: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on success rename it into place."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, destination)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(destination: Path | str) -> Iterator[Path]:
    """Yield a temporary directory beside `destination`; on success it replaces `destination`."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield tmp
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(destination: Path | str, data: Any) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
