"""MLflow: where runs go, what a candidate run records, and the registry helpers of the promotion gate.

`evaluate` logs every trained candidate that has no run yet, in one process per task (importing mlflow
costs about a second, opening its store another); `promote` (stages/promote.py) registers versions and
moves the `champion` / `challenger` / `previous-champion` aliases; `rollback` moves `champion` back.
A run is keyed by the md5 of the candidate's model.joblib and by RUN_FORMAT, so a re-run of
`evaluate` (another candidate changed, the champion rule changed) reuses the runs of unchanged
candidates, and an empty tracking store (a fresh clone, a new team server) gets a run for every
candidate the next time `evaluate` runs (`dvc repro -f -s evaluate@<task>` if nothing else changed).

When DVC restores `promote` from its run-cache (a reverted param) or skips it (deps unchanged), nothing
here runs: the registry's `champion` alias stays where the last executed promote put it until
`dvc repro -f -s promote@<task>` re-checks the registry.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema

import domain
from domain.schema import SCHEMAS, CategoryField, Kind
from stages.config import repo_root, split_file
from stages.files import md5sum
from stages.models import load_model
from stages.provenance import git_commit
from stages.scoring import flat_scores, flatten, predict_latency
from stages.tuning import trials_table

# What a candidate run records (tags, params, metrics, artifacts, model flavour). Runs are found again only with
# the same format: bump it when the logging changes in a way old runs should not stand for, and the next
# `evaluate` logs every candidate afresh.
RUN_FORMAT = "2"

# Types skops must be told to trust when loading our models. MLflow saves each model with skops and loads it
# back trusting exactly these, so anything else in a model fails `evaluate`: extend the list deliberately.
SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",  # the dtype SimpleImputer records for a task with optional or category fields
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    "domain.estimators.ClippedRegressor",
)


def trusted_types(task: str) -> list[str]:
    """SKOPS_TRUSTED_TYPES and the task's declared feature transformer (`module:Class` -> `module.Class`)."""
    transformer = SCHEMAS[task].feature_transformer
    return [*SKOPS_TRUSTED_TYPES, *([transformer.replace(":", ".")] if transformer else [])]


def model_pip_requirements() -> list[str]:
    """What a logged model needs to be loaded with `mlflow.pyfunc.load_model` elsewhere. Explicit
    pins: inferring them costs ~12 s per model and pulls in test tooling."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "pandas", "numpy", "scipy", "skops")]


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set (a team server), else a SQLite file at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


# A tracking server that does not answer must fail a stage in seconds, not after MLflow's default 7 retries with
# exponential backoff (about 4 minutes): a probe first, then few, short retries for the requests that follow.
PROBE_SECONDS = 5.0
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class TrackingUnreachable(RuntimeError):
    """The tracking server did not answer; the message names the URI and what to check."""


def unreachable(uri: str, reason: str) -> TrackingUnreachable:
    return TrackingUnreachable(
        f"MLflow tracking server {uri} does not answer ({reason}): check that it runs and that MLFLOW_TRACKING_URI "
        f"is right (unset, the pipeline uses {repo_root() / 'mlflow.db'})")


def probe(uri: str, timeout: float = PROBE_SECONDS) -> None:
    """GET <uri>/health once, with a short timeout; TrackingUnreachable unless it answers. Local stores pass."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as answer:
            answer.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise unreachable(uri, f"HTTP {exc.code} from /health") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise unreachable(uri, str(reason) if str(reason) else type(reason).__name__) from None


def configure() -> None:
    """Point MLflow at the tracking URI with bounded retries, after one probe of a tracking server."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    probe(tracking_uri())
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


def run_tags(task: str, candidate: str, summary: dict[str, Any], raw_md5: str, md5: str) -> dict[str, str]:
    """Provenance of a candidate run: code (the commit the train stage ran at), pipeline stage, experiment, data
    and model identity."""
    return {
        "task": task,
        "candidate": candidate,
        "git_commit": git_commit(),  # the code evaluate ran at (train stages never call git)
        "dvc_stage": f"train@{candidate}",  # the stage that trained it (evaluate logs it)
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "raw_data_md5": raw_md5,
        "model_md5": md5,
        "run_format": RUN_FORMAT,
    }


def signature(task: str, output_type: str) -> ModelSignature:
    """Model input schema from the task schema: optional fields stay optional, numbers may be integers.

    MLflow 3.17 has no "integer or float" column type: "double" refuses int64 columns (what
    `pd.DataFrame([{"age": 41, ...}])` gives), "long" refuses floats and NaN (a missing
    optional field). A numeric field is therefore typed Any, so MLflow passes ints and floats through
    unchanged; the model itself converts every numeric column to float (`to_numpy(dtype=float)` in
    a feature transformer, scikit-learn's input check otherwise) and fails on a value that is not a number.
    """
    columns = []
    for spec in SCHEMAS[task].features:
        if isinstance(spec, CategoryField):
            columns.append(ColSpec("string", spec.name, required=spec.required))
        else:
            columns.append(ColSpec(AnyType(), spec.name))
    return ModelSignature(inputs=Schema(columns), outputs=Schema([ColSpec(output_type)]))


def run_name(candidate: str, md5: str) -> str:
    """What the MLflow UI lists: the candidate and its model's short hash (the same candidate trained with
    other params or data is another model, another run)."""
    return f"{candidate}-{md5[:8]}"


def split_dataset(task: str, split: str) -> mlflow.data.Dataset:
    """A prepared split as an MLflow dataset: its DVC path as the source and the file's md5 (what dvc.lock
    records for it) as the digest, with the rows' schema and count."""
    path = split_file(task, split)
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file dataset source twice and warns that a path matches both.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        return mlflow.data.from_pandas(pd.read_csv(path), source=path.as_posix(),
                                       targets=SCHEMAS[task].target.name, name=f"{task}-{split}",
                                       digest=md5sum(path))


def training_datasets(task: str) -> dict[str, mlflow.data.Dataset]:
    """The data a candidate run records (`mlflow.log_input`): context -> split it was trained / evaluated on."""
    return {"training": split_dataset(task, "train"), "evaluation": split_dataset(task, "test")}


def find_candidate_run(experiment: str, candidate: str, md5: str) -> tuple[str, str] | None:
    """(run id, model URI) of the newest finished run logged for this very model in this format, if any.

    A run whose logging failed part-way ends FAILED (or stays RUNNING if the process was killed): never reused.
    """
    runs = MlflowClient().search_runs(
        [experiment],
        filter_string=(f"tags.candidate = '{candidate}' and tags.model_md5 = '{md5}' "
                       f"and tags.run_format = '{RUN_FORMAT}' and attributes.status = 'FINISHED'"),
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs or "model_uri" not in runs[0].data.tags:
        return None
    return runs[0].info.run_id, runs[0].data.tags["model_uri"]


def logged_params(summary: dict[str, Any]) -> dict[str, Any]:
    """The candidate block as fitted (a search replaced by its choice) plus the search's budget and outcome."""
    params = dict(summary["params"])
    if "search" in summary:
        search = summary["search"]
        params["search"] = {"n_iter": search["n_iter"], "seed": search["seed"], "trials": len(search["trials"]),
                            "best_trial": search["best_trial"]}
    return params


def log_candidate(
    experiment: str, task: str, candidate: str, model: Any, summary: dict[str, Any], tags: dict[str, str],
    latency: dict[str, float], datasets: dict[str, mlflow.data.Dataset],
) -> tuple[str, str]:
    """One MLflow run for one trained candidate: params, CV metrics, cost and latency, the search, tags, the
    data it was trained and evaluated on (`datasets`: context -> dataset), the model.

    Returns (run id, model URI); the URI (`models:/m-...` in MLflow 3) is what gets registered.
    """
    output_type = "double" if SCHEMAS[task].kind is Kind.REGRESSION else "string"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name(candidate, tags["model_md5"]),
                          tags=tags) as run:
        for context, dataset in datasets.items():
            mlflow.log_input(dataset, context=context)
        mlflow.log_params(flatten(logged_params(summary)))
        mlflow.log_metrics(flat_scores({"cv": summary["cv"], "cost": summary["cost"], "latency": latency}))
        if "search" in summary:
            log_search(run.info.run_id, summary["search"])
        try:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature(task, output_type),
                input_example=pd.DataFrame(summary["input_example"]),
                pip_requirements=model_pip_requirements(),
                code_paths=[str(Path(domain.__file__).parent)],  # the classes the model pickles
                serialization_format="skops",
                skops_trusted_types=trusted_types(task),  # MLflow loads the file back with exactly these
            )
        except mlflow.exceptions.MlflowException as exc:
            hint = ("\nThe model holds a type missing from SKOPS_TRUSTED_TYPES (stages/tracking.py): add it only if "
                    "you trust it." if "untrusted" in exc.message.lower() else "")
            raise RuntimeError(f"MLflow could not log the model of {task}/{candidate}: {exc.message}{hint}") from exc
        mlflow.set_tag("model_uri", info.model_uri)
        return run.info.run_id, info.model_uri


def log_search(run_id: str, report: dict[str, Any]) -> None:
    """A search's trials in the candidate's run: CV metrics per trial (step = trial number, so MLflow
    charts them), the table as search/trials.csv and the whole report as search/search.json."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(name, value, now, step)
        for step, trial in enumerate(report["trials"])
        for name, value in flat_scores(trial["cv"], prefix="search_").items()
    ]
    client = MlflowClient()
    client.log_batch(run_id, metrics=metrics)
    client.log_text(run_id, trials_table(report).to_csv(index=False), "search/trials.csv")
    client.log_dict(run_id, report, "search/search.json")


class CandidateRun(NamedTuple):
    run_id: str
    model_uri: str
    logged_now: bool  # False: the run of this very model was already in the store


def candidate_run(task: str, candidate: str, model_file: Path, summary: dict[str, Any], raw_md5: str,
                  latency_rows: pd.DataFrame, datasets: dict[str, mlflow.data.Dataset]) -> CandidateRun:
    """The MLflow run of a trained candidate: its existing run, or a new one logged now (with the predict latency
    measured on `latency_rows` on this machine: a report, not an input of any decision, and the `datasets`
    of `training_datasets`)."""
    md5 = md5sum(model_file)  # what DVC caches: the identity of a trained candidate
    experiment = experiment_id(task)
    found = find_candidate_run(experiment, candidate, md5)
    if found is not None:
        return CandidateRun(*found, logged_now=False)
    tags = run_tags(task, candidate, summary, raw_md5, md5)
    model = load_model(model_file)
    latency = predict_latency(model, latency_rows)
    return CandidateRun(*log_candidate(experiment, task, candidate, model, summary, tags, latency, datasets),
                        logged_now=True)


def add_metrics(run_id: str, metrics: dict[str, Any], tags: dict[str, str] | None = None) -> None:
    """Add evaluation results to an existing candidate run, in one batch."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    MlflowClient().log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in flat_scores(metrics).items()],
        tags=[RunTag(key, value) for key, value in (tags or {}).items()],
    )


def register_version(registered_name: str, run_id: str, model_uri: str) -> str:
    """The registered model's version of the run's model, registering it unless it already is.

    Re-running the gate with the same models must not mint a new version each time."""
    client = MlflowClient()
    existing = []
    if client.search_registered_models(filter_string=f"name = '{registered_name}'"):
        existing = client.search_model_versions(f"name = '{registered_name}' and run_id = '{run_id}'")
    return str(existing[0].version if existing else mlflow.register_model(model_uri, registered_name).version)


def alias_version(registered_name: str, alias: str) -> Any | None:
    """The ModelVersion the alias points at, or None (no such registered model, or no such alias)."""
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{registered_name}'"):
        return None
    try:
        return client.get_model_version_by_alias(registered_name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def all_versions(registered_name: str) -> list[Any]:
    """Every version of the registered model (none if it does not exist yet)."""
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{registered_name}'"):
        return []
    return list(client.search_model_versions(f"name = '{registered_name}'"))
