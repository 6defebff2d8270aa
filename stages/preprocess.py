"""Stage `preprocess`: validate the raw CSV against the task schema and as a whole, then split train/test.

Every value is checked against the declaration (stages/rawdata.py), then the file as a whole against the
task's limits in params.yaml `<task>.data` (stages/datachecks.py: rows, duplicates, missing values, a target that
varies, classes): failing data stops the pipeline here, before anything later runs.

The split is seeded (params `split`) and stratified by class for classification tasks. Imputation and
feature engineering are not done here: they are learned inside the model pipeline from the
training split only.

    python -m stages.preprocess <task>
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
from sklearn.model_selection import train_test_split

from domain.schema import SCHEMAS, Kind
from stages.config import load_params, prepared_dir, raw_csv, task_argument
from stages.datachecks import check_whole_file
from stages.files import atomic_dir
from stages.lifetime import start_stage
from stages.params_schema import DataChecks
from stages.rawdata import RawDataError, read_raw_csv, validate_raw


def data_limits(task: str) -> dict[str, float]:
    """The task's whole-file limits: its params.yaml `<task>.data` block over the defaults."""
    return DataChecks.model_validate(load_params()[task].get("data") or {}).model_dump()


def split(frame: pd.DataFrame, task: str, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    schema = SCHEMAS[task]
    stratify = frame[schema.target.name] if schema.kind is Kind.CLASSIFICATION else None
    return train_test_split(frame, test_size=test_size, random_state=seed, stratify=stratify)


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    params = load_params()["split"]
    source = raw_csv(args.task)
    try:
        frame = validate_raw(read_raw_csv(source), SCHEMAS[args.task], source)
        check_whole_file(frame, SCHEMAS[args.task], data_limits(args.task), source, f"{args.task}.data")
    except RawDataError as exc:
        sys.exit(f"preprocess {args.task}: {exc}")
    train, test = split(frame, args.task, params["test_size"], params["seed"])
    with atomic_dir(prepared_dir(args.task)) as out:
        train.to_csv(out / "train.csv", index=False)
        test.to_csv(out / "test.csv", index=False)
    print(f"preprocess {args.task}: {len(train)} train rows, {len(test)} test rows -> {prepared_dir(args.task)}")


if __name__ == "__main__":
    main()
