"""No code outside the declarations names a task: tasks/<task>.yaml and params.yaml are the whole of a task, so
adding, renaming or removing one edits nothing else (docs/bring-your-own-data.md).

Every text file of the scanned places is searched for each declared task's name, case-insensitive, as a word or
inside an identifier (`housing_prediction_value_usd`, `HOUSING_CSV`, `iris-classifier`), comments included: an
example in a comment goes stale as surely as code does. A failure lists file:line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT
from tests.support.tasks import TASKS

# Where no task may be named.
GENERIC = ("bento_service", "stages", "monitoring", "prediction_log", "deploy", ".github", "Makefile")
SKIPPED_DIRS = {"__pycache__", "node_modules"}


def task_pattern(tasks: tuple[str, ...] = TASKS) -> re.Pattern[str]:
    """A declared task's name in any case, not inside a longer word: no letter before it, no lowercase letter after
    it (digits, `_`, `-` and a capital starting the next word of a CamelCase name still separate it, so it is found
    inside identifiers)."""
    names = "|".join(re.escape(task) for task in tasks)
    return re.compile(rf"(?<![A-Za-z])(?i:{names})(?![a-z])")


def text_files(place: str) -> list[Path]:
    root = PROJECT_ROOT / place
    if root.is_file():
        return [root]
    return sorted(path for path in root.rglob("*")
                  if path.is_file() and not SKIPPED_DIRS & set(path.relative_to(root).parts))


def mentions(places: tuple[str, ...], pattern: re.Pattern[str] | None = None) -> list[str]:
    """`file:line: text` of every line that names a task."""
    pattern = pattern or task_pattern()
    found = []
    for place in places:
        for path in text_files(place):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # a binary file
            for number, line in enumerate(text.splitlines(), start=1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_the_pattern_finds_a_task_in_words_and_identifiers_only() -> None:
    pattern = task_pattern(("housing", "iris"))
    for named in ("make monitor TASK=housing", "HOUSING_CSV", "housing_prediction_value_usd",
                  "image: housing-iris-monitor", "IrisFeatures", "/iris/predict", "task: iris"):
        assert pattern.search(named), named
    for unrelated in ("iridescent", "Irish", "warehousing", "housings", "prediction-service"):
        assert not pattern.search(unrelated), unrelated


def test_mentions_lists_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.unit.test_generic_code.PROJECT_ROOT", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\nMETRIC = 'housing_value'\n")
    (tmp_path / "pkg" / "b.bin").write_bytes(b"\xff\xfe housing")
    assert mentions(("pkg",), task_pattern(("housing",))) == ["pkg/a.py:2: METRIC = 'housing_value'"]


@pytest.mark.parametrize("place", GENERIC)
def test_no_task_is_named_in(place: str) -> None:
    assert (PROJECT_ROOT / place).exists(), place
    found = mentions((place,))
    assert found == [], "tasks named outside their declarations:\n" + "\n".join(found)

