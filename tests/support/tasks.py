"""The project's two declared tasks as the tests use them, read from tasks/<task>.yaml like the pipeline does."""

from __future__ import annotations

import json
from pathlib import Path

from domain.schema import CategoryField, load_schema, task_names

HOUSING = load_schema("housing")
IRIS = load_schema("iris")
TASKS = task_names()
SCHEMAS = {task: load_schema(task) for task in TASKS}
OCEAN_PROXIMITY = next(spec.categories for spec in HOUSING.features if isinstance(spec, CategoryField))


def served_set(repo: Path) -> dict[str, dict[str, str]]:
    """A repository's served set: each declared task's models/<task>/bento_tags.json."""
    return {task: json.loads((repo / "models" / task / "bento_tags.json").read_text())
            for task in task_names(repo)}


def candidates(params: dict, task: str) -> dict[str, dict]:
    """A task's entries of params.yaml `candidates` (keyed `<task>-<name>`)."""
    return {name: spec for name, spec in params["candidates"].items() if spec["task"] == task}
