"""Stage `package`: put each task's served champion and challenger into the BentoML model store, with provenance.

Each served champion (stage `promote`: models/<task>/served/) is saved as `<name>:<version>` (`model_name` of
domain/schema.py), each served challenger as `<name>-challenger:<version>` (`challenger_name`), with the metadata
`role`, `candidate`, `input_example`, its scores and `mlflow_model_version`. models/bento_models.json maps
`{task: {"champion": tag, "challenger": tag}}`. The version is a hash of what defines the served model (the
model file, its reference profile, its scores), so the same pipeline outputs give the same tag on every machine
and models/bento_models.json, the stage's git-tracked output, does not change when nothing did. Provenance that
differs between runs (MLflow run id and registry version from models/<task>/mlflow.json, written by promote;
the git commit) goes into the model's metadata in the store, never into the tag.

The reference profile (stage `profile`) travels with the model as the custom object "reference": the
service loads it for the live drift score and `make monitor` for the offline report, so drift is always
measured against the training data of the model that made the predictions. The compiled form (stage
`compile`) travels as the custom object "compiled" (the ONNX graph's bytes, or None with the reason in the
metadata): the service serves it and falls back to the scikit-learn model when it is absent or fails. The
explanation background (stage `explain`) travels as "explain_background": POST /<task>/explain measures
contributions against it (the champion only: stage `explain` measures the champion; the challenger has none).

    python -m stages.package
    python -m stages.package --missing-only   # `make bento`: fill this machine's store after `dvc pull`

After `dvc pull` (team mode) every output is in place and DVC runs nothing, but this machine's BentoML store
is empty: `--missing-only` saves the champions and challengers the store lacks and leaves the models already
there as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from domain.schema import SCHEMAS, TASKS
from stages.config import (
    ROLES,
    compiled_dir,
    mlflow_info,
    reference_profile,
    served_info,
    served_model,
)
from stages.explain_files import explain_background
from stages.files import md5sum, read_json, write_json
from stages.lifetime import start_stage
from stages.models import load_model
from stages.provenance import git_commit
from stages.rawdata import read_split

VERSION_CHARS = 16


def model_version(task: str, role: str, defining: dict[str, Any], graph: bytes | None) -> str:
    """A content hash of the served model: model file, reference profile, explanation background (the champion's),
    compiled graph and the deterministic metadata."""
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


def provenance(task: str, role: str, commit: str) -> dict[str, Any]:
    """Where the model came from, as far as this machine knows: MLflow's ids (if promote ran here) and git."""
    path = mlflow_info(task)
    tracked = read_json(path) if path.is_file() else {}
    return {
        "mlflow_run_id": tracked.get(f"{role}_run_id", "unknown"),
        "mlflow_model_uri": tracked.get(f"{role}_model_uri", "unknown"),
        "mlflow_registered_model": tracked.get("registered_model", SCHEMAS[task].model_name),
        "mlflow_model_version": tracked.get(f"{role}_model_version", "unknown"),
        "git_commit": commit,
    }


def store_name(task: str, role: str) -> str:
    return SCHEMAS[task].model_name if role == "champion" else SCHEMAS[task].challenger_name


def package(task: str, commit: str, missing_only: bool = False, role: str = "champion") -> str:
    """Save one task's served champion (or challenger) into the model store (unless that very model is there);
    return its tag. `missing_only`: a model already stored under the tag is kept even if its provenance differs."""
    import bentoml
    from bentoml.exceptions import NotFound

    served = read_json(served_info(task))
    info = served[role]
    defining = {
        "task": task,
        "role": role,
        "candidate": info["candidate"],
        "raw_data_md5": info["raw_data_md5"],  # the served model's own (a kept incumbent's may be older)
        "cv": info["cv"],
        "test": info["test"],
        # complete training rows: the service warms the model up with them before it is ready
        "input_example": read_split(task, "train")[0].dropna().head(3).to_dict(orient="records"),
    }
    graph, compiled = compiled_form(task, role)
    defining["compiled"] = {key: value for key, value in compiled.items() if key != "task"}
    metadata = {**defining, **provenance(task, role, commit)}
    tag = f"{store_name(task, role)}:{model_version(task, role, defining, graph)}"
    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        stored = None
    if stored is not None:
        if missing_only or dict(stored.info.metadata) == metadata:
            return tag
        bentoml.models.delete(tag)  # same model, newer provenance (another MLflow run, another commit)
    custom_objects = {"reference": read_json(reference_profile(task, role)), "compiled": graph}
    if role == "champion":  # stage `explain` measures the champion only
        custom_objects["explain_background"] = read_json(explain_background(task))
    bentoml.sklearn.save_model(tag, load_model(served_model(task, role)), metadata=metadata,
                               labels={"task": task, "role": role}, signatures={"predict": {"batchable": False}},
                               custom_objects=custom_objects)
    return tag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missing-only", action="store_true",
                        help="only save the champions this machine's BentoML store lacks (after `dvc pull`)")
    args = parser.parse_args(argv)
    start_stage()
    try:
        commit = git_commit()
        tags = {task: {role: package(task, commit, args.missing_only, role) for role in ROLES} for task in TASKS}
    except FileNotFoundError as exc:
        sys.exit(f"package: {exc.filename} is missing; run `dvc repro promote profile compile explain` first")
    write_json("models/bento_models.json", tags)
    for task, roles in tags.items():
        print(f"package {task}: " + ", ".join(f"{role} {tag}" for role, tag in roles.items()))


if __name__ == "__main__":
    main()
