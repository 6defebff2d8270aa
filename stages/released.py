"""What `make release` last made the champion on this machine, so a registry that vanished is noticed.

An empty registry is normal on a fresh clone (the committed served set was decided by CI against an empty
registry) and alarming after a release: the database was deleted or emptied, or MLFLOW_TRACKING_URI points at
another store. The difference is this machine's record: `make release` writes
models/<task>/released.json (git-ignored, at the repository root even under `dvc exp run --temp`) naming the
tracking URI, the version and the model it made the champion. When that record exists and the registry has no
champion, the gate and `make release` stop (`Vanished`) instead of promoting as if nothing had ever been
released. `make start-over TASK=<task>` deletes the record: the next gate decides as on a fresh clone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.config import repo_root
from stages.files import read_json, write_json


class Vanished(Exception):
    """The registry lacks the champion this machine released; the message says how to restore or start over."""


DEFAULT_STORE = "the repository's mlflow.db"


def record_file(task: str) -> Path:
    return repo_root() / "models" / task / "released.json"


def store_name(uri: str) -> str:
    """The tracking URI as recorded: the default SQLite file by its place in the repository (a moved or copied
    repository keeps its store), anything else as it is."""
    return DEFAULT_STORE if uri == f"sqlite:///{repo_root() / 'mlflow.db'}" else uri


def remember(task: str, uri: str, version: str, champion: dict[str, str]) -> None:
    """Record what `make release` made the champion (called once the alias moved)."""
    write_json(record_file(task), {"task": task, "tracking_uri": store_name(uri), "version": version,
                                   "champion": champion})


def forget(task: str) -> bool:
    """Delete the record (start over on purpose); False when there was none."""
    path = record_file(task)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


def check_present(task: str, uri: str, has_champion: bool) -> None:
    """Raise Vanished when this machine released a champion and the registry at `uri` has none."""
    path = record_file(task)
    if has_champion or not path.is_file():
        return
    record: dict[str, Any] = read_json(path)
    champion = record.get("champion", {})
    where = ("the same store: its database was deleted or emptied" if record.get("tracking_uri") == store_name(uri)
             else f"{record.get('tracking_uri')}; MLFLOW_TRACKING_URI now points at another store")
    raise Vanished(
        f"the registry at {uri} has no champion, but `make release` made version {record.get('version')} "
        f"({champion.get('candidate')}, model md5 {str(champion.get('model_md5'))[:8]}) the champion in {where}. "
        f"Restore that store (the mlflow.db backup, or the right MLFLOW_TRACKING_URI), or start over on purpose: "
        f"`make start-over TASK={task}`, then `dvc repro -f -s promote@{task} && dvc repro`")
