"""Where things live and which knobs are set: the one place that knows the repository layout."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from domain.schema import DeclarationError, TaskSchema, load_schema, task_names
from stages import params_schema


def repo_root() -> Path:
    """The real repository root.

    `dvc exp run --temp/--queue` runs stages in a throw-away copy under `.dvc/tmp/exps` and
    exports `DVC_ROOT` pointing at the real repository; anything that must outlive the run
    (the MLflow database) is anchored there.
    """
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    return Path(__file__).resolve().parent.parent


def workdir() -> Path:
    """The directory the stage runs in: inputs and outputs are relative to it (DVC's cwd)."""
    return Path.cwd()


@cache
def load_params(path: str = "params.yaml") -> dict[str, Any]:
    """params.yaml from the stage's working directory (DVC runs stages from the repo root), validated as a whole
    (stages/params_schema.py): SystemExit in one line naming the key path, the value and what is allowed."""
    try:
        return params_schema.read(path)  # relative: the working directory's
    except params_schema.ParamsError as exc:
        raise SystemExit(str(exc)) from None
    except OSError as exc:
        raise SystemExit(f"{path}: cannot be read: {exc.strerror}") from None


def declared_tasks() -> tuple[str, ...]:
    """params.yaml `tasks`, read from the stage's working directory."""
    try:
        return task_names(workdir())
    except (DeclarationError, OSError) as exc:
        raise SystemExit(str(exc)) from None


def task_schema(task: str) -> TaskSchema:
    """The task's declaration (tasks/<task>.yaml), or SystemExit naming the file and the key at fault."""
    try:
        return load_schema(task)
    except DeclarationError as exc:
        raise SystemExit(str(exc)) from None


def task_params(task: str) -> dict[str, Any]:
    """The task's block of params.yaml (champion rule, gate, feature and explanation settings)."""
    params = load_params()
    if task not in declared_tasks() or not isinstance(params.get(task), dict):
        raise SystemExit(f"unknown task {task!r}: params.yaml lists {', '.join(declared_tasks())} under `tasks`, "
                         "each with its own block")
    return params[task]


def task_candidates(task: str, params: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The task's candidates, params.yaml `candidates` entries whose `task` is this one (without that key)."""
    params = params or load_params()
    return {name: {key: value for key, value in spec.items() if key != "task"}
            for name, spec in (params.get("candidates") or {}).items() if spec.get("task") == task}


def raw_csv(task: str) -> Path:
    return Path("data") / "raw" / f"{task}.csv"


def prepared_dir(task: str) -> Path:
    return Path("data") / "prepared" / task


def split_file(task: str, split: str) -> Path:
    """A prepared split, `train` or `test`: what `preprocess` writes and every later stage reads."""
    return prepared_dir(task) / f"{split}.csv"


def candidate_dir(task: str, candidate: str) -> Path:
    return Path("models") / task / "candidates" / candidate


def champion_model(task: str) -> Path:
    """The champion's fitted pipeline, at a path that does not change when the winner does."""
    return Path("models") / task / "champion.joblib"


ROLES = ("champion", "challenger")


def served_dir(task: str) -> Path:
    """What stage `promote` serves: champion.joblib, challenger.joblib and served.json (who each is)."""
    return Path("models") / task / "served"


def served_model(task: str, role: str = "champion") -> Path:
    """The served champion's (or challenger's) fitted pipeline, the one profile/compile/explain/package read."""
    return served_dir(task) / f"{role}.joblib"


def served_info(task: str) -> Path:
    """Which candidate the served champion and challenger are, their md5s and test scores (deterministic)."""
    return served_dir(task) / "served.json"


def promotion_file(task: str) -> Path:
    """The promotion gate's decision and why (git-tracked, deterministic)."""
    return Path("metrics") / "promotion" / f"{task}.json"


def bento_tags(task: str) -> Path:
    """The task's served tags, `{"champion": tag, "challenger": tag}` (stage `package`, git-tracked): together,
    over params.yaml `tasks`, the served set the service pins."""
    return Path("models") / task / "bento_tags.json"


def compiled_dir(task: str, role: str = "champion") -> Path:
    """A served model's compiled form (stage `compile`): compiled.json, and model.onnx when it compiled."""
    return Path("models") / task / ("compiled" if role == "champion" else f"compiled-{role}")


def champion_info(task: str) -> Path:
    """Who the champion is: candidate name, scores, cost (deterministic: a DVC output)."""
    return Path("models") / task / "champion.json"


def mlflow_info(task: str) -> Path:
    """The MLflow run ids of the last evaluate and promote on this machine: git-ignored, not a DVC output,
    because they differ on every machine."""
    return Path("models") / task / "mlflow.json"


def reference_profile(task: str, role: str = "champion") -> Path:
    """What the served model's inputs and predictions looked like in training: the drift baseline."""
    return Path("models") / task / ("reference.json" if role == "champion" else f"reference-{role}.json")


def metrics_file(task: str) -> Path:
    """The champion's headline scores (git-tracked)."""
    return Path("metrics") / f"{task}.json"


def candidate_metrics_dir(task: str) -> Path:
    """One headline file per candidate (git-tracked)."""
    return Path("metrics") / task


def plots_dir(task: str) -> Path:
    return Path("metrics") / "plots" / task


def dvc_cached_file(md5: str) -> Path | None:
    """The file DVC's cache holds under this md5 (every output this machine produced or pulled), if any.

    The cache is found through DVC's own API (it may be configured elsewhere; `dvc exp run --temp` shares the
    repository's), so an older model's exact bytes can come back after the work tree moved on."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(workdir())) as repo:
            path = Path(repo.cache.local.oid_to_path(md5))
    except DvcException:  # not a DVC repository: the caller falls back to the registry
        return None
    return path if path.is_file() else None


def task_argument(task: str) -> str:
    """argparse type of a task argument: a task params.yaml lists, whose declaration reads."""
    import argparse

    load_params()  # the whole params.yaml first: a typo anywhere stops the stage before it does any work
    if task not in declared_tasks():
        raise argparse.ArgumentTypeError(f"unknown task {task!r}: params.yaml `tasks` lists "
                                         f"{', '.join(declared_tasks())}")
    try:
        load_schema(task)
    except DeclarationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return task
