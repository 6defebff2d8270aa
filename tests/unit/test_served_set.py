"""The served set the service pins (bento_service/served_set.py): exact tags only, and a clear error otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bento_service.served_set import load_served_set, served_set_path
from tests.support import PROJECT_ROOT
from tests.support.tasks import SCHEMAS, served_set

TAGS = {task: {"champion": f"{schema.model_name}:0123456789abcdef",
               "challenger": f"{schema.challenger_name}:fedcba9876543210"} for task, schema in SCHEMAS.items()}


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "bento_models.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_committed_served_set_names_exact_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVED_MODELS", raising=False)
    assert served_set_path() == PROJECT_ROOT
    assert load_served_set() == served_set(PROJECT_ROOT)
    assert set(load_served_set()) == set(SCHEMAS)


def test_a_project_directory_serves_its_declared_tasks_files(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("tasks: [iris]\n")
    with pytest.raises(SystemExit, match=r"iris/bento_tags\.json is missing"):
        load_served_set(tmp_path)
    (tmp_path / "models" / "iris").mkdir(parents=True)
    (tmp_path / "models" / "iris" / "bento_tags.json").write_text(json.dumps(TAGS["iris"]))
    assert load_served_set(tmp_path) == {"iris": TAGS["iris"]}


def test_an_undeclared_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="serves 'wine', which is not declared"):
        load_served_set(write(tmp_path, {**TAGS, "wine": {"champion": "wine-classifier:0123456789abcdef"}}))


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
