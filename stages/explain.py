"""Stage `explain@<task>`: the background sample explanations are measured against, and global importance.

Writes models/<task>/explain_background.json (packaged with the model) and metrics/plots/importance/<task>.csv.

- **Background**: `<task>.explain.background_rows` training rows, one seeded row per stratum of the champion's
  prediction (`background_records`), as raw records. `package` attaches them to the model (custom object
  "explain_background"), so the service explains against the data of the model that predicts. With it travel
  the explainer's settings (`explain.max_exact_fields`, `explain.samples`, `explain.seed`: key "explainer"),
  so the service computes what this stage did. One explanation costs 2**fields x these rows through the model
  up to `max_exact_fields` fields (9 fields, 4 rows: 512 x 4 = 2,048 rows), at most
  (samples x (fields - 1) + 2) x these rows above it (domain/explain.py), hence a knob.
- **Global importance**: the mean absolute contribution of each raw field over a seeded sample of
  `explain.importance_rows` test-split rows (the target's unit for a regression; probability points, averaged over
  the classes, for a classification): Shapley values from domain/explain.py (exact up to `explain.max_exact_fields`
  fields, a seeded permutation estimate above), the code and settings the service answers /<task>/explain with, over
  the predictor the service serves (the compiled graph where there is one), so the chart and the service's answers
  are the same numbers. Written as plot data (metrics/plots/importance/<task>.csv, drawn by `dvc plots show`) and
  logged as an artifact of the champion's MLflow run (models/<task>/mlflow.json names it; skipped with a note when
  evaluate did not run on this machine, or logged its runs to another store). tests/pipeline/test_explain_stage.py
  checks exact values against shap's exact explainer.

Deterministic: the same model and rows give the same numbers (single-threaded predictions, fixed seeds),
rounded to 6 significant digits in the CSV.

    python -m stages.explain <task>
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from domain.explain import (
    CoalitionShapley,
    Model,
    ShapleySettings,
    arrays_model,
    encode,
    frame_model,
    shapley_explainer,
)
from domain.schema import SCHEMAS, Kind, TaskSchema
from stages.config import compiled_dir, load_params, mlflow_info, task_argument
from stages.config import served_model as served_file
from stages.explain_files import explain_background, importance_plot
from stages.files import atomic_path, md5sum, read_json
from stages.lifetime import start_stage

BACKGROUND_FORMAT = 2  # 2: with the explainer's settings ("explainer")


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def background_records(X: pd.DataFrame, predictions: np.ndarray, rows: int, seed: int) -> list[dict[str, Any]]:
    """`rows` training rows as raw records (None where missing): the rows sorted by the champion's prediction
    (a class's index for a classifier), cut into `rows` equal strata, one seeded row drawn from each.

    Why stratified: an explanation can afford only a few background rows (its cost is 512 model rows
    per background row), and a plain sample of 4 rows can miss the expensive or the cheap block groups, moving
    the base value (their mean prediction) by tens of thousands of dollars; one row per prediction stratum
    keeps it near the training mean."""
    if len(X) <= rows:
        chosen = np.arange(len(X))
    else:
        order = np.argsort(predictions, kind="stable")
        rng = np.random.default_rng(seed)
        chosen = np.array([stratum[rng.integers(len(stratum))] for stratum in np.array_split(order, rows)])
    sample = X.iloc[chosen]
    return [{key: _jsonable(value) for key, value in record.items()} for record in sample.to_dict(orient="records")]


def sort_key(task: str, predictions: np.ndarray) -> np.ndarray:
    """What the background is stratified by: the prediction (regression) or the predicted class's index."""
    return np.argmax(predictions, axis=1) if SCHEMAS[task].kind is Kind.CLASSIFICATION else predictions


def served_model(task: str, pipeline: Any) -> tuple[Model, str]:
    """The field-matrix model of what the service serves: the compiled graph if the champion compiled, else
    the scikit-learn model (probabilities for a classifier)."""
    schema = SCHEMAS[task]
    record = read_json(compiled_dir(task) / "compiled.json")
    if record.get("compiled"):
        from domain.compiled import CompiledModel

        compiled = CompiledModel(pipeline.steps[0][1], (compiled_dir(task) / "model.onnx").read_bytes())
        return arrays_model(schema, compiled.predict_arrays), "compiled"
    predict = pipeline.predict_proba if schema.kind is Kind.CLASSIFICATION else pipeline.predict
    return frame_model(schema, predict), "scikit-learn"


def explainer_settings(settings: dict[str, Any]) -> ShapleySettings:
    """The explainer's settings from params.yaml `explain` (its other keys are this stage's own)."""
    return ShapleySettings(max_exact_fields=settings["max_exact_fields"], samples=settings["samples"],
                           seed=settings["seed"])


def contributions(explainer: CoalitionShapley, model: Model, rows: np.ndarray) -> np.ndarray:
    """Each row's Shapley values (rows, fields[, classes]) from `explainer` (`shapley_explainer`: what the
    service builds from the same background and settings)."""
    return np.stack([explainer.explain(row, model).contributions for row in rows])


def background_document(task: str, seed: int, records: list[dict[str, Any]], settings: ShapleySettings,
                        model_md5: str) -> dict[str, Any]:
    """explain_background.json: the background records and the explainer settings the service uses with them,
    and the md5 of the champion file it was drawn for (`package` and `make bento` check it: stages/consistency.py)."""
    return {"format": BACKGROUND_FORMAT, "task": task, "seed": seed, "model_md5": model_md5,
            "explainer": settings.as_dict(), "records": records}


def importance_sample(X_test: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """The seeded test rows global importance is averaged over (all of them when there are no more)."""
    return X_test.sample(rows, random_state=seed) if len(X_test) > rows else X_test


def importance(schema: TaskSchema, values: np.ndarray) -> list[tuple[str, float]]:
    """Mean |contribution| per raw field (over rows, and classes for a classifier), largest first."""
    mean_abs = np.abs(values).mean(axis=tuple(a for a in range(values.ndim) if a != 1))
    fields = schema.feature_names
    return sorted(((f, float(v)) for f, v in zip(fields, mean_abs, strict=True)), key=lambda fv: (-fv[1], fv[0]))


def write_importance(path: Path, ranked: list[tuple[str, float]]) -> None:
    """The ranking as plot data. The field column is `raw_field`: `dvc plots` drops a data column named `field`
    (a key of its own), and the bars would be labelled "undefined"."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["raw_field", "mean_abs_contribution"])
        writer.writerows((field, f"{value:.6g}") for field, value in ranked)


def log_to_mlflow(task: str, plot: Path) -> str:
    """Attach the importance to the champion's MLflow run (named by the last promote on this machine)."""
    info = mlflow_info(task)
    run_id = read_json(info).get("champion_run_id") if info.is_file() else None
    if not run_id:
        return f"not logged to MLflow: {info} names no champion run (evaluate did not run here)"
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    from stages.tracking import configure, tracking_uri

    configure()
    client = mlflow.MlflowClient()
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        return (f"not logged to MLflow: run {run_id} ({info}) is not in the store at {tracking_uri()} (another "
                f"store since evaluate ran; `dvc repro -f -s evaluate@{task} explain@{task}` logs them there)")
    client.log_artifact(run_id, str(plot), artifact_path="explain")
    return f"logged to MLflow run {run_id} (artifact explain/{plot.name})"


def main(argv: list[str] | None = None) -> None:
    start_stage()
    from stages.models import load_model
    from stages.rawdata import read_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    task, schema, settings = args.task, SCHEMAS[args.task], load_params()["explain"]
    X_train = read_split(task, "train")[0]
    model, predictor = served_model(task, load_model(served_file(task)))
    records = background_records(X_train, sort_key(task, model(encode(schema, X_train.to_dict(orient="records")))),
                                 load_params()[task]["explain"]["background_rows"], settings["seed"])
    X_test = read_split(task, "test")[0]
    sample = importance_sample(X_test, settings["importance_rows"], settings["seed"])
    rows = encode(schema, sample.to_dict(orient="records"))
    shapley = explainer_settings(settings)
    explainer = shapley_explainer(schema, encode(schema, records), shapley)
    ranked = importance(schema, contributions(explainer, model, rows))
    with atomic_path(explain_background(task)) as tmp:
        tmp.write_text(json.dumps(background_document(task, settings["seed"], records, shapley,
                                                      md5sum(served_file(task))),
                                  separators=(",", ":"), allow_nan=False) + "\n", encoding="utf-8")
    write_importance(importance_plot(task), ranked)
    print(f"explain {task}: background {len(records)} training rows; {explainer.method} Shapley values over "
          f"{len(schema.features)} fields; importance over {len(rows)} test rows ({predictor} predictor): "
          + ", ".join(f"{field} {value:.4g}" for field, value in ranked[:4]) + ", ...")
    print(f"explain {task}: {log_to_mlflow(task, importance_plot(task))}")


if __name__ == "__main__":
    main()
