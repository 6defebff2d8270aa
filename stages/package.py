"""Stage `package`: a task's part of the served set, the exact BentoML model tags of its champion and challenger.

models/<task>/bento_tags.json (git-tracked) holds `{"champion": tag, "challenger": tag}`; over the tasks
params.yaml lists, these files are the served set. The service, the built Bento, its container image and the
Kubernetes deployment serve exactly these tags, never "the newest model in the store". A tag is
`<name>:<version>` (the declaration's `model_name`, or `<name>-challenger`), the version a content hash of what
is served: the model file, its reference profile (stage `profile`), its compiled graph (stage `compile`), the
champion's explanation background (stage `explain`) and the deterministic facts packaged with them. The same
pipeline outputs give the same tag on every machine; the same model served again (a rollback) gets its old tag
back. Scores and provenance (MLflow run and registry version, git commit) are metadata, not part of the tag.

Refuses, writing nothing, when the compiled graph or the explanation background was not made from the served
model file it would ship with (stages/consistency.py). The stage writes only that file: it never touches a
BentoML store, so an experiment changes nothing a server uses. `make bento` and `make serve` save the served
models into this machine's store first
(stages/bento_store.py).

    python -m stages.package <task>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from domain.schema import SCHEMAS
from stages.config import (
    ROLES,
    bento_tags,
    compiled_dir,
    declared_tasks,
    reference_profile,
    served_info,
    served_model,
    task_argument,
)
from stages.consistency import stale_files
from stages.explain_files import explain_background
from stages.files import md5sum, read_json, write_json
from stages.lifetime import start_stage
from stages.rawdata import read_split

VERSION_CHARS = 16


@dataclass(frozen=True)
class Packaged:
    """One served model as the store gets it: its tag, the facts its version hashes, its compiled graph."""

    tag: str
    defining: dict[str, Any]
    graph: bytes | None
    served: dict[str, Any]  # its entry of served.json: candidate, md5, scores


def model_version(task: str, role: str, defining: dict[str, Any], graph: bytes | None) -> str:
    """A content hash of the served model: model file, reference profile, explanation background (the champion's),
    compiled graph and the deterministic facts packaged with them."""
    digest = hashlib.sha256()
    background = md5sum(explain_background(task)) if role == "champion" else ""
    for part in (md5sum(served_model(task, role)), md5sum(reference_profile(task, role)), background,
                 hashlib.md5(graph or b"").hexdigest(), json.dumps(defining, sort_keys=True)):
        digest.update(part.encode())
    return digest.hexdigest()[:VERSION_CHARS]


def compiled_form(task: str, role: str = "champion") -> tuple[bytes | None, dict[str, Any]]:
    """The compile stage's graph (None if the model did not compile) and its record."""
    record = read_json(compiled_dir(task, role) / "compiled.json")
    graph = compiled_dir(task, role) / "model.onnx"
    return (graph.read_bytes() if record.get("compiled") else None), record


def store_name(task: str, role: str) -> str:
    return SCHEMAS[task].model_name if role == "champion" else SCHEMAS[task].challenger_name


def packaged(task: str, role: str = "champion") -> Packaged:
    """The task's served champion (or challenger) as the work tree's outputs define it."""
    info = read_json(served_info(task))[role]
    defining = {
        "task": task,
        "role": role,
        "candidate": info["candidate"],
        "raw_data_md5": info["raw_data_md5"],  # the served model's own (a kept incumbent's may be older)
        # complete training rows: the service warms the model up with them before it is ready
        "input_example": read_split(task, "train")[0].dropna().head(3).to_dict(orient="records"),
    }
    graph, compiled = compiled_form(task, role)
    defining["compiled"] = {key: value for key, value in compiled.items() if key != "task"}
    return Packaged(f"{store_name(task, role)}:{model_version(task, role, defining, graph)}", defining, graph, info)


def served_tags(task: str) -> dict[str, str]:
    """The task's tags as the work tree's outputs define them (what the stage writes)."""
    return {role: packaged(task, role).tag for role in ROLES}


def committed_served_set() -> dict[str, dict[str, str]]:
    """The served set the work tree's files name: every declared task's bento_tags.json ({} where missing)."""
    return {task: read_json(bento_tags(task)) if bento_tags(task).is_file() else {} for task in declared_tasks()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    task = parser.parse_args(argv).task
    start_stage()
    try:
        stale = stale_files(task)
        if stale:
            sys.exit(f"package {task}: refused, a mixed state: " + "; ".join(stale))
        tags = served_tags(task)
    except FileNotFoundError as exc:
        sys.exit(f"package {task}: {exc.filename} is missing; run `dvc repro` first")
    write_json(bento_tags(task), tags)
    print(f"package {task}: " + ", ".join(f"{role} {tag}" for role, tag in tags.items()))


if __name__ == "__main__":
    main()
