"""Raw data in: read a task's CSV, check it against the task schema, and load the prepared splits.

Every stage that reads data goes through here, so a broken file fails with one kind of message:
the file, the column and the CSV line numbers, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from domain.schema import SCHEMAS, NumericField, TaskSchema
from stages.config import split_file


class RawDataError(ValueError):
    """Raw data does not match its schema. The message names the file, column and rows."""


def read_raw_csv(path: Path | str) -> pd.DataFrame:
    """The raw CSV as text columns parsed by pandas; unreadable files raise RawDataError naming file and line."""
    try:
        return pd.read_csv(path, keep_default_na=True, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RawDataError(f"{path}: not UTF-8 text ({_undecodable_line(Path(path), exc.start)})") from None
    except pd.errors.EmptyDataError:
        raise RawDataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise RawDataError(f"{path}: cannot be parsed as CSV: {exc}".rstrip()) from None


def _undecodable_line(path: Path, offset: int) -> str:
    """Where the first byte that is not UTF-8 is, as a 1-based line number; pandas only knows a byte offset
    within its read buffer, so the file is scanned line by line."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"byte {line[exc.start:exc.start + 1]!r} at line {number}, column {exc.start + 1}"
    return f"byte offset {offset}"


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """Describe offending rows as 1-based line numbers of the CSV (header is line 1)."""
    index = list(mask[mask].index[:limit])
    lines = ", ".join(str(i + 2) for i in index)
    more = int(mask.sum()) - len(index)
    return f"line {lines}" + (f" and {more} more" if more > 0 else "")


def validate_raw(frame: pd.DataFrame, schema: TaskSchema, source: Path | str) -> pd.DataFrame:
    """Check a raw table against the schema and return it with numeric columns as float64, its columns named
as the declaration names them (the file's `column` names renamed).

    Raises RawDataError naming the file, the column and the first offending CSV lines,
    so a user can open the file and see the problem.
    """
    expected = [spec.source_column for spec in (*schema.features, schema.target)]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise RawDataError(f"{source}: missing column(s) {', '.join(missing)}; found {found}")
    unknown = [c for c in frame.columns if c not in expected]
    if unknown:
        raise RawDataError(f"{source}: unexpected column(s) {', '.join(map(str, unknown))}")
    if frame.empty:
        raise RawDataError(f"{source}: no data rows")

    # the declaration's names from here on (a `column:` renames the file's)
    out = frame[expected].set_axis(schema.columns, axis=1)
    for spec in (*schema.features, schema.target):
        column, label = out[spec.name], spec.source_column
        if isinstance(spec, NumericField):
            numbers = pd.to_numeric(column, errors="coerce").astype("float64")
            not_numeric = numbers.isna() & column.notna()
            if not_numeric.any():
                example = column[not_numeric].iloc[0]
                raise RawDataError(
                    f"{source}: column {label!r} has non-numeric values ({example!r} at {_rows(not_numeric)})"
                )
            if not spec.nullable and numbers.isna().any():
                raise RawDataError(f"{source}: column {label!r} has missing values at {_rows(numbers.isna())}")
            infinite = np.isinf(numbers)
            if infinite.any():
                raise RawDataError(f"{source}: column {label!r} has infinite values at {_rows(infinite)}")
            outside = (numbers < spec.minimum) | (numbers > spec.maximum)
            if outside.any():
                raise RawDataError(
                    f"{source}: column {label!r} has values outside [{spec.minimum}, {spec.maximum}] "
                    f"at {_rows(outside)}"
                )
            out[spec.name] = numbers
        else:
            present = column.notna()
            if spec.required and not present.all():
                raise RawDataError(f"{source}: column {label!r} has missing values at {_rows(~present)}")
            unknown_values = present & ~column.isin(spec.categories)
            if unknown_values.any():
                example = column[unknown_values].iloc[0]
                raise RawDataError(
                    f"{source}: column {label!r} has unknown category {example!r} at {_rows(unknown_values)}; "
                    f"expected one of {', '.join(spec.categories)}"
                )
            out[spec.name] = column.astype("object")
    for smaller, larger in schema.not_greater_than:
        bad = out[smaller] > out[larger]
        if bad.any():
            raise RawDataError(f"{source}: field {smaller!r} exceeds {larger!r} at {_rows(bad)}")
    return out


def read_split(task: str, part: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of the prepared `part` ("train" or "test") of a task."""
    schema = SCHEMAS[task]
    frame = pd.read_csv(split_file(task, part))
    return frame[schema.feature_names], frame[schema.target.name]
