"""MLflow: where runs go, what a candidate run records, and how the champion is registered.

`import mlflow` costs about a second, so stage modules import this module lazily, only in
the code path that logs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema

from stages.config import repo_root
from stages.schema import SCHEMAS, CategoryField

# Types skops must be told to trust when loading our models. Anything else showing up in a
# saved model is an error: extend this list deliberately, never automatically.
SKOPS_TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    "stages.features.ClippedRegressor",
    "stages.features.HousingFeatures",
)

# What a logged model needs to be loaded with `mlflow.pyfunc.load_model` elsewhere. Explicit
# pins: inferring them costs ~12 s per model and pulls in test tooling.
def model_pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "pandas", "numpy", "scipy", "skops")]


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set (a team server), else a SQLite file at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def configure() -> None:
    mlflow.set_tracking_uri(tracking_uri())


def experiment_id(task: str) -> str:
    """The task's experiment, created on first use; artifacts beside the SQLite file by default."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(task)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        location = (repo_root() / "mlartifacts").as_uri()
    return client.create_experiment(task, artifact_location=location)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_tags(task: str, candidate: str, raw_md5: str) -> dict[str, str]:
    return {
        "task": task,
        "candidate": candidate,
        "git_commit": git_commit(),
        "dvc_stage": os.environ.get("DVC_STAGE", f"train-{task}@{candidate}"),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "raw_data_md5": raw_md5,
    }


def signature(task: str, output_type: str) -> ModelSignature:
    """Model input schema from the task schema: optional fields stay optional."""
    columns = []
    for spec in SCHEMAS[task].features:
        if isinstance(spec, CategoryField):
            columns.append(ColSpec("string", spec.name, required=spec.required))
        else:
            columns.append(ColSpec("double", spec.name))
    return ModelSignature(inputs=Schema(columns), outputs=Schema([ColSpec(output_type)]))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a_b_c": leaf}: MLflow params and metrics are flat."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


def _metrics(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in _flatten(values).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def log_candidate(
    task: str,
    candidate: str,
    model: Any,
    params: dict[str, Any],
    metrics: dict[str, Any],
    input_example: pd.DataFrame,
    tags: dict[str, str],
) -> tuple[str, str]:
    """One MLflow run for one candidate: params, metrics, tags and the model.

    Returns (run id, model URI); the URI (`models:/m-...` in MLflow 3) is what gets registered.
    """
    import skops.io

    configure()
    untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    unexpected = sorted(untrusted - set(SKOPS_TRUSTED_TYPES))
    if unexpected:
        raise RuntimeError(f"model of {task}/{candidate} holds types not in SKOPS_TRUSTED_TYPES: {unexpected}")
    output_type = "double" if task == "housing" else "string"
    with mlflow.start_run(experiment_id=experiment_id(task), run_name=candidate, tags=tags) as run:
        mlflow.log_params(_flatten(params))
        mlflow.log_metrics(_metrics(metrics))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature(task, output_type),
            input_example=input_example,
            pip_requirements=model_pip_requirements(),
            code_paths=[str(Path(__file__).parent)],
            serialization_format="skops",
            skops_trusted_types=sorted(untrusted),
        )
        return run.info.run_id, info.model_uri


def add_metrics(run_id: str, metrics: dict[str, Any], tags: dict[str, str] | None = None) -> None:
    """Add evaluation results to an existing candidate run."""
    client = MlflowClient()
    for key, value in _metrics(metrics).items():
        client.log_metric(run_id, key, value)
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)


def run_exists(run_id: str) -> bool:
    configure()
    try:
        MlflowClient().get_run(run_id)
        return True
    except mlflow.exceptions.MlflowException:
        return False


def register_champion(registered_name: str, run_id: str, model_uri: str, alias: str = "champion") -> str:
    """Point the alias at the run's model version, registering it unless it already is.

    Re-running evaluate with the same champion must not mint a new version each time.
    """
    configure()
    client = MlflowClient()
    existing = []
    if client.search_registered_models(filter_string=f"name = '{registered_name}'"):
        existing = client.search_model_versions(f"name = '{registered_name}' and run_id = '{run_id}'")
    version = existing[0].version if existing else mlflow.register_model(model_uri, registered_name).version
    client.set_registered_model_alias(registered_name, alias, version)
    return str(version)
