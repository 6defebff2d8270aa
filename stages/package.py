"""Stage `package`: put both champions into the BentoML model store, with their provenance.

Each champion is saved as `<name>:<version>` (`model_name` of domain/schema.py) with metadata:
MLflow run id, model URI and registry version, CV and test metrics, raw-data md5, git commit.
Its reference profile (stage `profile`) travels with it as the custom object "reference": the
service loads it for the live drift score and `make monitor` for the offline report, so drift is
always measured against the training data of the model that made the predictions. (Not metadata:
GET /model returns the metadata, and the profile holds a 2000-row sample.)
Writes models/bento_models.json with the tags, for `bentoml build` and for people.

    python -m stages.package
"""

from __future__ import annotations

import sys

from domain.schema import SCHEMAS, TASKS
from stages.config import champion_info, champion_model, reference_profile
from stages.files import read_json, write_json
from stages.lifetime import start_stage
from stages.models import load_model
from stages.provenance import git_commit
from stages.rawdata import read_split


def package(task: str, commit: str) -> str:
    """Save one task's champion into the model store; return its tag."""
    import bentoml

    info = read_json(champion_info(task))
    metadata = {
        "task": task,
        "candidate": info["candidate"],
        "mlflow_run_id": info["mlflow_run_id"],
        "mlflow_model_uri": info["mlflow_model_uri"],
        "mlflow_registered_model": info["registered_model"],
        "mlflow_model_version": info["model_version"],
        "raw_data_md5": info["raw_data_md5"],
        "git_commit": commit,
        "cv": info["cv"],
        "test": info["test"],
        # complete training rows: the service warms the model up with them before it is ready
        "input_example": read_split(task, "train")[0].dropna().head(3).to_dict(orient="records"),
    }
    model = load_model(champion_model(task))
    saved = bentoml.sklearn.save_model(SCHEMAS[task].model_name, model, metadata=metadata, labels={"task": task},
                                       signatures={"predict": {"batchable": False}},
                                       custom_objects={"reference": read_json(reference_profile(task))})
    return str(saved.tag)


def main() -> None:
    start_stage()
    try:
        tags = {task: package(task, git_commit()) for task in TASKS}
    except FileNotFoundError as exc:
        sys.exit(f"package: {exc.filename} is missing; run `dvc repro evaluate profile` first")
    write_json("models/bento_models.json", tags)
    for task, tag in tags.items():
        print(f"package {task}: {tag}")


if __name__ == "__main__":
    main()
