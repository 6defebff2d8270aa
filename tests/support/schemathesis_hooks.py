"""Schemathesis hooks for the fuzz test (loaded through SCHEMATHESIS_HOOKS).

JSON Schema cannot say that a record's `total_bedrooms` may not exceed its `total_rooms` (a rule
the service enforces with a 400 naming the field). A generated record that breaks it with both values
inside their documented ranges gets `total_bedrooms = total_rooms`: a valid value replaced by another
valid value, so the case stays exactly as valid (or as invalid) as it was generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from domain.schema import NumericField
from tests.support.tasks import HOUSING

SPECS = {spec.name: spec for spec in HOUSING.features if isinstance(spec, NumericField)}


def _in_range(name: str, value: Any) -> bool:
    spec = SPECS[name]
    return isinstance(value, int | float) and not isinstance(value, bool) and spec.minimum <= value <= spec.maximum


def _keep_order(record: Any) -> None:
    if not isinstance(record, dict):
        return
    for smaller, larger in HOUSING.not_greater_than:
        low, high = record.get(smaller), record.get(larger)
        if _in_range(smaller, low) and _in_range(larger, high) and low > high:
            record[smaller] = high


def _fix(body: Any) -> Any:
    if isinstance(body, dict):
        _keep_order(body)
        records = body.get("records")
        if isinstance(records, list):
            for record in records:
                _keep_order(record)
    return body


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    """Fuzzing phase."""
    return _fix(body)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Coverage phase (boundary values), which runs case hooks but not body hooks."""
    _fix(case.body)
    return case
