"""Save the served set into this machine's BentoML model store: the first step of `make bento` and `make serve`.

For each task and role, the model `models/<task>/bento_tags.json` names is saved under exactly that tag, with its
reference profile ("reference"), compiled graph ("compiled") and, for the champion, its explanation background
("explain_background") as custom objects, and its scores and provenance as metadata: the MLflow run that logged
it, the registry version it holds (once `make release` registered it; "not released" before) and the git commit
its run was logged at. A model
already stored under its tag is left alone unless its provenance changed (it is saved again: same tag, same
bytes, newer metadata).

Refuses, saving nothing, when the work tree is a mixed state: a `dvc repro` holds the repository's lock, an
output the stages up to `package` wrote differs from dvc.lock (or a stage is out of date), a compiled graph or
explanation background was made from another model file (stages/consistency.py), or the outputs do not give the
tags models/<task>/bento_tags.json names. The message names the stale file and the command that fixes it.

    python -m stages.bento_store
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stages.config import ROLES, bento_tags, declared_tasks, reference_profile, served_model
from stages.consistency import stale_files
from stages.explain_files import explain_background
from stages.files import read_json
from stages.models import load_model
from stages.package import Packaged, committed_served_set, packaged
from stages.provenance import git_commit

NOT_RELEASED = "not released"  # the registry version of a model `make release` has not registered yet


def provenance(task: str, role: str, served: dict[str, Any]) -> dict[str, Any]:
    """Where the model came from, as this machine's MLflow store knows it: its run and registry version."""
    from stages.registry import Identity, Registry

    registry = Registry(task)
    model = Identity(served["candidate"], served["model_md5"])
    run = registry.run_of(model)
    return {
        "mlflow_registered_model": registry.name,
        "mlflow_run_id": run[0] if run else "unknown",
        "mlflow_model_uri": run[1] if run else "unknown",
        "mlflow_model_version": registry.registered(model) or NOT_RELEASED,
        # the code the model was evaluated and logged at (its run's tag), else the work tree's
        "git_commit": registry.client.get_run(run[0]).data.tags.get("git_commit", "unknown") if run else git_commit(),
    }


def save(task: str, role: str, model: Packaged) -> str:
    """Save one served model under its tag unless it is stored with the same metadata; what was done."""
    import bentoml
    from bentoml.exceptions import NotFound

    scores = {key: model.served[key] for key in ("cv", "test") if model.served[key] is not None}
    metadata = {**model.defining, **scores, **provenance(task, role, model.served)}
    try:
        stored = bentoml.models.get(model.tag)
    except NotFound:
        stored = None
    if stored is not None:
        if dict(stored.info.metadata) == metadata:
            return "stored already"
        bentoml.models.delete(model.tag)  # same model, newer provenance (released since, another commit)
    custom_objects = {"reference": read_json(reference_profile(task, role)), "compiled": model.graph}
    if role == "champion":  # stage `explain` measures the champion only
        custom_objects["explain_background"] = read_json(explain_background(task))
    bentoml.sklearn.save_model(model.tag, load_model(served_model(task, role)), metadata=metadata,
                               labels={"task": task, "role": role}, signatures={"predict": {"batchable": False}},
                               custom_objects=custom_objects)
    return "saved" if stored is None else "provenance updated"


def lock_mismatches(tasks: tuple[str, ...]) -> list[str]:
    """What differs from dvc.lock in the data the stages up to each task's `package` wrote and read, one line per
    file (DVC's own status). Code and params edits are left out: the outputs are still the committed ones."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo

    try:
        with Repo(".") as repo:
            status = repo.status(targets=[f"package@{task}" for task in tasks], with_deps=True)
    except LockError:
        return ["a `dvc repro` (or another DVC command) is running in this repository: wait for it to finish"]
    except DvcException as exc:
        return [f"DVC cannot compare the work tree with dvc.lock: {exc}"]
    outs: dict[str, tuple[str, list[str]]] = {}
    deps: dict[str, tuple[str, list[str]]] = {}
    for stage, changes in status.items():
        name = stage.split(":")[-1].strip()
        for change in changes:
            for kind, files in (change.items() if isinstance(change, dict) else []):
                for path, state in (files.items() if isinstance(files, dict) else []):
                    if isinstance(state, str) and not path.endswith(".py") and path != "params.yaml":
                        (outs if kind == "changed outs" else deps).setdefault(path, (state, []))[1].append(name)
    return ([f"{path} {state} (an output of {', '.join(stages)}, vs dvc.lock); run `dvc checkout` for the committed "
             "outputs, or `dvc repro`" for path, (state, stages) in outs.items()]
            + [f"{path} {state} since {', '.join(stages)} ran (vs dvc.lock): stale; run `dvc repro`"
               for path, (state, stages) in deps.items() if path not in outs])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    mixed = lock_mismatches(declared_tasks())
    try:
        mixed += [line for task in declared_tasks() for line in stale_files(task)]
    except FileNotFoundError as exc:
        sys.exit(f"bento store: {exc.filename} is missing; run `dvc repro` (or `dvc pull`) first")
    if mixed:
        sys.exit("bento store: refused, the work tree is a mixed state, nothing saved:\n  " + "\n  ".join(mixed))
    try:
        named = committed_served_set()
        models = {(task, role): packaged(task, role) for task in declared_tasks() for role in ROLES}
    except FileNotFoundError as exc:
        sys.exit(f"bento store: {exc.filename} is missing; run `dvc repro` (or `dvc pull`) first")
    stale = [f"{task} {role}: the outputs give {model.tag}, {bento_tags(task)} names {named[task].get(role)}"
             for (task, role), model in models.items() if named[task].get(role) != model.tag]
    if stale:
        sys.exit("bento store: the work tree does not match the served set, nothing saved (run `dvc repro`, or "
                 "`dvc checkout` to go back to the committed outputs):\n  " + "\n  ".join(stale))
    for (task, role), model in models.items():
        print(f"bento store: {model.tag} ({task} {role}): {save(task, role, model)}")


if __name__ == "__main__":
    main()
