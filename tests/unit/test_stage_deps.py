"""Every stage depends on exactly the repository code it runs, so editing that code reruns the stage.

For each stage of dvc.yaml (foreach expanded as DVC expands it) the code it runs is the import
closure of the module its `cmd` runs (AST, transitively, inside the repository) plus the model code
its task's pickles import when a stage loads or builds them (domain/estimators.py and the task's
`feature_transformer`, which candidates.py imports by name). The test fails when that code is missing
from the stage's deps, and when a code dep is not run by any item of the stage (DVC cannot give
foreach items different dep lists, so items share the union).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT_ROOT
from tests.support.imports import import_closure, module_file
from tests.support.tasks import SCHEMAS, TASKS

DVC_YAML = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
CODE_PACKAGES = ("domain", "stages", "bento_service", "prediction_log", "monitoring")
MODEL_LOADERS = {"stages/models.py", "stages/candidates.py"}  # a stage running these loads or builds models


def foreach_items(spec: dict) -> list[tuple[str, object]]:
    """(key, item) pairs of a foreach: a list, or `${a.b}` naming a params dict."""
    values = spec["foreach"]
    if isinstance(values, str):
        node = PARAMS
        for part in values.strip("${}").split("."):
            node = node[part]
        values = node
    return list(values.items()) if isinstance(values, dict) else [(str(v), v) for v in values]


def render(text: str, key: str, item: object) -> str:
    """A foreach item's text: `${item}`, `${key}` and `${item.<field>}` of a dict item."""
    text = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), text)  # type: ignore[index]
    return text.replace("${item}", str(item)).replace("${key}", key)


def stages() -> dict[str, list[tuple[str, list[str]]]]:
    """stage name -> [(cmd, deps)] for each of its items."""
    out = {}
    for name, spec in DVC_YAML["stages"].items():
        if "foreach" in spec:
            out[name] = [(render(spec["do"]["cmd"], k, v), [render(d, k, v) for d in spec["do"]["deps"]])
                         for k, v in foreach_items(spec)]
        else:
            out[name] = [(spec["cmd"], list(spec["deps"]))]
    return out


def model_code(task: str) -> set[str]:
    files = {"domain/estimators.py"}
    if SCHEMAS[task].feature_transformer:
        module = SCHEMAS[task].feature_transformer.split(":")[0]
        files.add(str(module_file(module).relative_to(PROJECT_ROOT)))
    return files


def code_run(cmd: str) -> set[str]:
    """Repository files a stage command executes."""
    match = re.match(r"sh stages/python.sh -m ([\w.]+)(.*)", cmd)
    assert match, f"stage command {cmd!r} is not `sh stages/python.sh -m <module> ...` (the project's Python)"
    module, args = match.group(1), match.group(2).split()
    files = {str(path.relative_to(PROJECT_ROOT)) for path in import_closure(module)}
    if files & MODEL_LOADERS:
        for task in [a for a in args if a in TASKS] or TASKS:  # no task argument: every task (package)
            files |= model_code(task)
    return files


def code_deps(deps: list[str]) -> set[str]:
    files: set[str] = set()
    for dep in deps:
        path = PROJECT_ROOT / dep
        if dep.split("/")[0] in CODE_PACKAGES:
            files |= ({str(p.relative_to(PROJECT_ROOT)) for p in path.rglob("*.py")} if path.is_dir() else {dep})
    return files


STAGES = stages()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_file_a_stage_runs_is_a_dep(stage: str) -> None:
    for cmd, deps in STAGES[stage]:
        missing = code_run(cmd) - code_deps(deps)
        assert not missing, f"{stage} ({cmd}) runs {sorted(missing)} but does not depend on it in dvc.yaml"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_code_dep_is_run_by_the_stage(stage: str) -> None:
    run = set().union(*(code_run(cmd) for cmd, _ in STAGES[stage]))
    for _, deps in STAGES[stage]:
        stale = code_deps(deps) - run
        assert not stale, f"{stage} depends on {sorted(stale)}, which it never runs"


def test_a_new_import_without_a_dep_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The closure follows imports through other modules: a stage that starts importing the offline
    monitoring package (through stages/config.py here) is missing those files."""
    from tests.support import imports

    real = imports.imports

    def with_extra_import(path: Path, root: Path = PROJECT_ROOT):
        found = real(path, root)
        is_config = path.name == "config.py" and path.parent.name == "stages"
        return [*found, (1, "monitoring.report")] if is_config else found

    monkeypatch.setattr(imports, "imports", with_extra_import)
    cmd, deps = STAGES["fetch"][0]
    assert {"monitoring/report.py", "monitoring/logquery.py"} <= code_run(cmd) - code_deps(deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_task_stage_depends_on_its_own_declaration_and_no_other(stage: str) -> None:
    """Editing one task's declaration re-runs that task's stages only."""
    for cmd, deps in STAGES[stage]:
        if len(cmd.split()) == 4:  # a stage of no task (check-params): no declaration
            assert not [dep for dep in deps if dep.startswith("tasks/")], f"{stage} depends on a declaration"
            continue
        task = cmd.split()[4]
        assert task in TASKS, f"{stage}: {cmd!r} names no task"
        declarations = [dep for dep in deps if dep.startswith("tasks/")]
        assert declarations == [f"tasks/{task}.yaml"], f"{stage} ({cmd}) depends on {declarations}"
