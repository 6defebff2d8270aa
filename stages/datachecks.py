"""Checks on a raw file as a whole, after every value passed its own check (stages/rawdata.py).

Values can each be plausible while the file is useless: a handful of rows, the same row repeated, a target that
never changes (every model then scores a perfect CV), a class missing, a field mostly empty. Each task declares
its limits in params.yaml `<task>.data` (stages/params_schema.py `DataChecks`); a failing check raises
RawDataError in one line naming the file, the check, the measured value and the limit, and `preprocess`, the
first stage that reads the file, stops before it writes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from domain.schema import Kind, TaskSchema
from stages.rawdata import RawDataError


def _share(count: int, total: int) -> str:
    return f"{count / total:.1%} ({count:,} of {total:,} rows)"


def check_whole_file(frame: pd.DataFrame, schema: TaskSchema, limits: dict[str, Any], source: Path | str,
                     key: str) -> None:
    """Raise RawDataError on the first check the validated table `frame` fails; `key` is the params block
    (`<task>.data`) the message points at."""
    rows = len(frame)

    def fail(check: str, measured: str, limit: str, name: str) -> None:
        raise RawDataError(f"{source}: check {check}: {measured}, limit {limit} (params.yaml {key}.{name})")

    if rows < limits["min_rows"]:
        fail("minimum rows", f"{rows:,} rows", f"{limits['min_rows']:,}", "min_rows")
    duplicates = int(frame.duplicated().sum())
    if duplicates / rows > limits["max_duplicate_share"]:
        fail("duplicate rows", f"{_share(duplicates, rows)} repeat an earlier row",
             f"{limits['max_duplicate_share']:.1%}", "max_duplicate_share")
    for name in schema.columns:
        missing = int(frame[name].isna().sum())
        if missing / rows > limits["max_missing_share"]:
            fail(f"missing values in {name!r}", f"{_share(missing, rows)} missing",
                 f"{limits['max_missing_share']:.1%}", "max_missing_share")
    target = frame[schema.target.name]
    if schema.kind is Kind.REGRESSION:
        if target.nunique() < 2:
            raise RawDataError(f"{source}: check target varies: {schema.target.name!r} has one value "
                               f"({target.iloc[0]}) in all {rows:,} rows, limit at least 2 distinct values")
        return
    counts = target.value_counts()
    present = {str(label): int(counts.get(label, 0)) for label in schema.classes}
    if sum(1 for count in present.values() if count > 0) < 2:
        raise RawDataError(f"{source}: check at least two classes: {schema.target.name!r} has "
                           f"{', '.join(f'{label} {count}' for label, count in present.items())}, limit 2 classes")
    rare = {label: count for label, count in present.items() if count < limits["min_class_count"]}
    if rare:
        label, count = min(rare.items(), key=lambda item: item[1])
        fail(f"rows per class ({schema.target.name!r})", f"class {label!r} has {count:,} rows",
             f"{limits['min_class_count']:,}", "min_class_count")
