"""MkDocs hook: the API reference pages, one per package, generated from the code's docstrings at build time.

Each page lists every module of its package (`::: package.module`, rendered by mkdocstrings), so a new module
appears in the reference without editing a page. The pages are named in mkdocs.yml's nav.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PACKAGES = ("domain", "stages", "bento_service", "prediction_log", "monitoring")
ROOT = Path(__file__).resolve().parent.parent


def _summary(path: Path) -> str:
    """The first paragraph of a module's docstring, or an empty string."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return docstring.split("\n\n")[0].strip()


def reference_page(package: str) -> str:
    """The Markdown of one package's page: its summary, then every module's docstring and public API."""
    init = ROOT / package / "__init__.py"
    lines = [f"# `{package}`", "", _summary(init) if init.exists() else "", ""]
    for module in sorted(p for p in (ROOT / package).glob("*.py") if p.name != "__init__.py"):
        lines += [f"::: {package}.{module.stem}", ""]
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for package in PACKAGES:
        files.append(File.generated(config, f"reference/{package}.md", content=reference_page(package)))
    return files
