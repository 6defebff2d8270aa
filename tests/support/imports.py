"""Static imports of the project's own modules, read with `ast` (inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import PROJECT_ROOT


def project_packages(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(path.parent.name for path in root.glob("*/__init__.py"))


def imports(path: Path, root: Path = PROJECT_ROOT) -> list[tuple[int, str]]:
    """(line, dotted name) of each import in a file: `import a.b` -> a.b; `from a import b` -> a and a.b
    (b may be a module or a name in a); relative imports are resolved against the file's package."""
    found: list[tuple[int, str]] = []
    package = ".".join(path.relative_to(root).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def module_file(name: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The file of a dotted module name inside the repository (a package's __init__.py), if any."""
    path = root.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def import_closure(module: str, root: Path = PROJECT_ROOT) -> set[Path]:
    """Every repository file that importing `module` executes: itself, the packages above each
    module, and transitively everything they import."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]), root)
            if path is not None and path not in seen:
                seen.add(path)
                todo += [name for _, name in imports(path, root)]
    return seen
