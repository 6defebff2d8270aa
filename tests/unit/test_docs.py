"""The docs as a user meets them: a short README, pages that name no issue numbers, and commands that exist.

The site itself is built in strict mode by `make docs` (CI): broken links, anchors and API references fail there.
Here: the README stays a front page (at most 200 lines), every page is in mkdocs.yml's nav, product docs and
code carry no development history (issue numbers), and every `make <target>` and `python -m <module>` the docs
print names a target the Makefile has and a module the repository has.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
PAGES = sorted((PROJECT_ROOT / "docs").glob("*.md"))
PRODUCT_DOCS = [README, PROJECT_ROOT / "ARCHITECTURE.md", PROJECT_ROOT / "deploy" / "README.md", *PAGES]
PRODUCT_CODE = ("domain", "stages", "bento_service", "prediction_log", "monitoring", "scripts", "bench")
ISSUE_NUMBER = re.compile(r"\b(?:issues?|tasks?|PR|pull request)\s+#?\d+\b", re.IGNORECASE)
BARE_REFERENCE = re.compile(r"(?<![\w/&-])#\d+\b")  # "#12"; an upstream "owner/repo#12" is a citation
FENCE = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def nav_pages(nav: list) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages |= nav_pages(value) if isinstance(value, list) else {value}
    return pages


def commands(path: Path) -> list[str]:
    """Every command line of the file's shell blocks, and every `make ...` or `python -m ...` in its prose."""
    text = path.read_text(encoding="utf-8")
    lines = [line for block in FENCE.findall(text) for line in block.splitlines()]
    return lines + re.findall(r"`((?:make|\S*python) [^`]+)`", text)


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail to docs/"
    for page in ("getting-started", "pipeline", "serving", "monitoring"):
        assert f"(docs/{page}.md)" in README.read_text(encoding="utf-8"), page


def test_every_page_is_in_the_nav() -> None:
    config = yaml.load((PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    listed = nav_pages(config["nav"])
    assert {page.name for page in PAGES} <= listed, {page.name for page in PAGES} - listed


def test_docs_and_code_name_no_issue_numbers() -> None:
    found = []
    for path in PRODUCT_DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ISSUE_NUMBER.search(line) or BARE_REFERENCE.search(line):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()[:100]}")
    for package in PRODUCT_CODE:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if ISSUE_NUMBER.search(line):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "development history in product docs or code:\n" + "\n".join(found)


def test_documented_make_targets_and_modules_exist() -> None:
    makefiles = [PROJECT_ROOT / "Makefile", *sorted((PROJECT_ROOT / "scripts").glob("*.mk"))]  # and what it includes
    targets = {target for path in makefiles
               for target in re.findall(r"^([a-z][a-z-]*):", path.read_text(encoding="utf-8"), re.MULTILINE)}
    missing = []
    for path in [README, *PAGES, PROJECT_ROOT / "deploy" / "README.md"]:
        for line in commands(path):
            for target in re.findall(r"(?:^|[;&|(]\s*|`)make ((?:[a-z][a-z-]*\s*)+)", line):
                missing += [f"{path.name}: make {word}" for word in target.split() if word not in targets]
            for module in re.findall(r"python -m (\w[\w.]*\w)", line):
                parts = module.split(".")
                if parts[0] in {"pytest", "pip", "venv", "http"}:
                    continue
                base = PROJECT_ROOT.joinpath(*parts)
                if not (base.with_suffix(".py").exists() or (base / "__main__.py").exists()):
                    missing.append(f"{path.name}: python -m {module}")
    assert not missing, missing
