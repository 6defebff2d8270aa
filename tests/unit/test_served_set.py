"""The served set the service pins (bento_service/served_set.py): exact tags only, and a clear error otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bento_service.served_set import DEFAULT_PATH, load_served_set
from domain.schema import SCHEMAS
from tests.support import PROJECT_ROOT

TAGS = {task: {"champion": f"{schema.model_name}:0123456789abcdef",
               "challenger": f"{schema.challenger_name}:fedcba9876543210"} for task, schema in SCHEMAS.items()}


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "bento_models.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_committed_served_set_names_exact_tags() -> None:
    committed = DEFAULT_PATH
    assert committed == PROJECT_ROOT / "models" / "bento_models.json"
    assert load_served_set(committed) == json.loads(committed.read_text())


def test_exact_tags_are_served_and_a_challenger_is_optional(tmp_path: Path) -> None:
    assert load_served_set(write(tmp_path, TAGS)) == TAGS
    alone = {task: {"champion": roles["champion"]} for task, roles in TAGS.items()}
    assert load_served_set(write(tmp_path, alone)) == alone


@pytest.mark.parametrize(("change", "message"), [
    ({"champion": "housing-regressor:latest"}, "must be an exact tag housing-regressor:<version>"),
    ({"champion": "housing-regressor"}, "must be an exact tag"),
    ({"champion": "iris-classifier:0123456789abcdef"}, "must be an exact tag housing-regressor:<version>"),
    ({"challenger": "housing-regressor:0123456789abcdef"}, "housing challenger must be an exact tag"),
    ({"champion": None}, "no champion tag for task 'housing'"),
])
def test_a_moving_or_foreign_tag_is_refused_naming_the_task_and_role(tmp_path: Path, change: dict,
                                                                      message: str) -> None:
    served = {**TAGS, "housing": {**TAGS["housing"], **change}}
    with pytest.raises(SystemExit, match=message):
        load_served_set(write(tmp_path, served))


def test_a_missing_or_broken_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="is missing: it names the models to serve; run `make run`"):
        load_served_set(tmp_path / "absent.json")
    with pytest.raises(SystemExit, match="is not valid JSON"):
        load_served_set(write(tmp_path, "{not json"))
