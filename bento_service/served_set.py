"""Which models this service serves: the exact tags the pipeline decided, never "the newest in the store".

Stage `package` writes models/<task>/bento_tags.json, `{"champion": tag, "challenger": tag}`, git-tracked beside
the commit that produced it; over the tasks params.yaml lists, these files are the served set. `bentoml serve`
(from the project) reads them here; `bentoml build` ships them in the Bento with params.yaml and the tasks'
declarations (bentofile.yaml), so the built Bento, its container image and every deployment of that image serve
the same tags. A model saved later under the same name (an experiment, another branch) changes nothing.

SERVED_MODELS names another project directory (a test's own pipeline, say) or a JSON file
`{task: {"champion": tag, "challenger": tag}}`; a task without a "challenger" is served by its champion alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import bentoml

from domain.schema import PROJECT_ROOT, DeclarationError, load_schema, task_names

SERVED_MODELS_ENV = "SERVED_MODELS"
ROLES = ("champion", "challenger")


def served_set_path() -> Path:
    """Where the served set is read from: SERVED_MODELS, else the project (or the Bento's source)."""
    return Path(os.environ.get(SERVED_MODELS_ENV) or PROJECT_ROOT)


def _read(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{path} is missing: it names the models to serve; run `make run` (or `dvc repro`)") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}): restore it with `git checkout {path}`") from None


def read_served_set(path: Path) -> tuple[dict[str, object], Path | None]:
    """The raw served set at `path` (a project directory or a JSON file) and the project it names tasks from."""
    if path.is_dir():
        try:
            tasks = task_names(path)
        except (DeclarationError, OSError) as exc:
            raise SystemExit(f"{path}: {exc}") from None
        return {task: _read(path / "models" / task / "bento_tags.json") for task in tasks}, path
    served = _read(path)
    if not isinstance(served, dict) or not served:
        raise SystemExit(f"{path}: expected {{task: {{\"champion\": tag, \"challenger\": tag}}}}")
    return served, None


def load_served_set(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Every served task's tags, checked: each task is declared and has a champion, every tag is `name:version`
    of its role."""
    path = path or served_set_path()
    served, _ = read_served_set(path)
    checked: dict[str, dict[str, str]] = {}
    for task, roles in served.items():
        try:
            schema = load_schema(task)
        except DeclarationError as exc:
            raise SystemExit(f"{path}: serves {task!r}, which is not declared: {exc}") from None
        if not isinstance(roles, dict) or not isinstance(roles.get("champion"), str):
            raise SystemExit(f"{path}: no champion tag for task {task!r}; run `dvc repro`")
        for role, name in (("champion", schema.model_name), ("challenger", schema.challenger_name)):
            tag = roles.get(role)
            if tag is not None and (not isinstance(tag, str) or tag.partition(":")[0] != name
                                    or tag.partition(":")[2] in ("", "latest")):
                raise SystemExit(f"{path}: {task} {role} must be an exact tag {name}:<version>, got {tag!r}")
        checked[task] = {role: roles[role] for role in ROLES if roles.get(role)}
    return checked


def model_reference(tag: str, path: Path | None = None) -> bentoml.models.BentoModel:
    """A reference to exactly this stored model; SystemExit naming the fix when this machine's store lacks it."""
    from bentoml.exceptions import NotFound

    try:
        bentoml.models.get(tag)
    except NotFound:
        raise SystemExit(f"model {tag}, named by {path or served_set_path()}, is not in the BentoML model store: "
                         "run `make bento` (it saves the served models), then serve again") from None
    return bentoml.models.BentoModel(tag)
