"""The package layering of ARCHITECTURE.md, checked on the source: imports go one way only.

Every import statement of every module (inside functions too) is read with `ast`; an import of a
project package that the importer may not use fails here, naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT_ROOT
from tests.support.imports import imports, project_packages

# package -> the project packages it may import (itself always)
ALLOWED = {
    "domain": set(),
    "prediction_log": set(),
    "stages": {"domain"},
    "bento_service": {"domain", "prediction_log"},
    "monitoring": {"domain", "prediction_log"},
    "scripts": set(),
    "bench": {"domain", "stages", "bento_service", "prediction_log", "monitoring", "scripts"},
    "tests": {"domain", "stages", "bento_service", "prediction_log", "monitoring", "scripts", "bench"},
}
SERVED = ("bento_service", "domain", "prediction_log")  # what the Bento carries


def violations(package: str, root: Path = PROJECT_ROOT) -> list[str]:
    known = set(project_packages(root))
    allowed = ALLOWED[package] | {package}
    found = {(str(path.relative_to(root)), line, name.split(".")[0])
             for path in (root / package).rglob("*.py") for line, name in imports(path, root)}
    return [f"{path}:{line} imports {module}" for path, line, module in sorted(found)
            if module in known and module not in allowed]


def test_every_package_has_a_place_in_the_layering() -> None:
    assert set(project_packages()) <= set(ALLOWED), "add the new package to ALLOWED and ARCHITECTURE.md"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layering(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The walker is not blind: a stage importing the service, even lazily inside a function, is caught."""
    for package in ("stages", "bento_service", "domain"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "stages" / "probe.py").write_text(
        "from domain import schema\nfrom . import other\n\ndef f():\n    from bento_service.config import SETTINGS\n")
    assert violations("stages", tmp_path) == ["stages/probe.py:5 imports bento_service"]


def test_the_bento_carries_whole_served_packages_and_nothing_else() -> None:
    """The served packages and the served set (the exact model tags the service pins), nothing else."""
    bentofile = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())
    assert sorted(bentofile["include"]) == sorted([*(f"/{name}/" for name in SERVED), "/params.yaml",
                                                   "/tasks/*.yaml", "/models/*/bento_tags.json"])
    assert bentofile.get("exclude", []) == ["__pycache__/"]
    for package in SERVED:  # and what it carries imports nothing it does not carry
        assert ALLOWED[package] <= set(SERVED), package
