"""Which models this service serves: the exact tags the pipeline decided, never "the newest in the store".

Stage `package` writes models/bento_models.json, `{task: {"champion": tag, "challenger": tag}}`, git-tracked
beside the commit that produced it. `bentoml serve` (from the project) reads it here; `bentoml build` ships it in
the Bento (bentofile.yaml), so the built Bento, its container image and every deployment of that image serve the
same tags. A model saved later under the same name (an experiment, another branch) changes nothing.

SERVED_MODELS names another such file (a test's own pipeline, say); a task without a "challenger" is served by
its champion alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import bentoml

from domain.schema import SCHEMAS

SERVED_MODELS_ENV = "SERVED_MODELS"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "models" / "bento_models.json"
ROLES = ("champion", "challenger")


def served_set_path() -> Path:
    return Path(os.environ.get(SERVED_MODELS_ENV) or DEFAULT_PATH)


def load_served_set(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Every declared task's tags, checked: each task has a champion, every tag is `name:version` of its role."""
    path = path or served_set_path()
    try:
        served = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{path} is missing: it names the models to serve; run `make run` (or `dvc repro`)") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}): restore it with `git checkout {path.name}`") from None
    for task, schema in SCHEMAS.items():
        roles = served.get(task) if isinstance(served, dict) else None
        if not isinstance(roles, dict) or not isinstance(roles.get("champion"), str):
            raise SystemExit(f"{path}: no champion tag for task {task!r}; run `dvc repro`")
        for role, name in (("champion", schema.model_name), ("challenger", schema.challenger_name)):
            tag = roles.get(role)
            if tag is not None and (not isinstance(tag, str) or tag.partition(":")[0] != name
                                    or tag.partition(":")[2] in ("", "latest")):
                raise SystemExit(f"{path}: {task} {role} must be an exact tag {name}:<version>, got {tag!r}")
    return {task: {role: served[task][role] for role in ROLES if served[task].get(role)} for task in SCHEMAS}


def model_reference(tag: str, path: Path | None = None) -> bentoml.models.BentoModel:
    """A reference to exactly this stored model; SystemExit naming the fix when this machine's store lacks it."""
    from bentoml.exceptions import NotFound

    try:
        bentoml.models.get(tag)
    except NotFound:
        raise SystemExit(f"model {tag}, named by {path or served_set_path()}, is not in the BentoML model store: "
                         "run `make bento` (it saves the served models), then serve again") from None
    return bentoml.models.BentoModel(tag)
