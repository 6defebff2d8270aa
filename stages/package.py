"""Stage `package`: the served set, the exact BentoML model tag of each task's champion and challenger.

models/bento_models.json (git-tracked) maps `{task: {"champion": tag, "challenger": tag}}`. The service, the
built Bento, its container image and the Kubernetes deployment serve exactly these tags, never "the newest
model in the store". A tag is `<name>:<version>` (`model_name` / `challenger_name` of domain/schema.py), the
version a content hash of what is served: the model file, its reference profile (stage `profile`), its compiled
graph (stage `compile`), the champion's explanation background (stage `explain`) and the deterministic facts
packaged with them. The same pipeline outputs give the same tag on every machine; the same model served again
(a rollback) gets its old tag back. Scores and provenance (MLflow run and registry version, git commit) are
metadata, not part of the tag.

The stage writes only that file: it never touches a BentoML store, so an experiment changes nothing a server
uses. `make bento` and `make serve` save the served models into this machine's store first
(stages/bento_store.py).

    python -m stages.package
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from domain.schema import SCHEMAS, TASKS
from stages.config import ROLES, compiled_dir, reference_profile, served_info, served_model
from stages.explain_files import explain_background
from stages.files import md5sum, read_json, write_json
from stages.lifetime import start_stage
from stages.rawdata import read_split

VERSION_CHARS = 16
SERVED_SET = "models/bento_models.json"


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


def served_set() -> dict[str, dict[str, str]]:
    """Every task's tags as the work tree's outputs define them (what the stage writes)."""
    return {task: {role: packaged(task, role).tag for role in ROLES} for task in TASKS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    start_stage()
    try:
        tags = served_set()
    except FileNotFoundError as exc:
        sys.exit(f"package: {exc.filename} is missing; run `dvc repro promote profile compile explain` first")
    write_json(SERVED_SET, tags)
    for task, roles in tags.items():
        print(f"package {task}: " + ", ".join(f"{role} {tag}" for role, tag in roles.items()))


if __name__ == "__main__":
    main()
