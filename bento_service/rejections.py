"""What a rejected request costs: bounded everywhere a client could make it grow.

A client chooses the keys of its JSON body, so anything derived from them is capped here: the
number of keys parsed (checked before pydantic builds one error per unknown key), the errors kept
in the answer and in the log row (the first few, strings truncated), and the Prometheus label of
a failure (a field of the task's schema, or one `unknown` bucket: a closed set of series).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from domain.schema import SCHEMAS

MAX_OBJECT_KEYS = 256  # keys in one JSON object: a record has at most 9
MAX_TOTAL_KEYS = 16_384  # keys in one body: a batch of 1,000 records has 9,001
MAX_ERRORS = 20  # errors listed in an answer and in its log row
MAX_TEXT = 120  # characters of a field path or message kept
UNKNOWN = "unknown"  # the metric label of a field that is not in the schema
STRUCTURAL = ("body", "records", "items")  # labels of the body as a whole and of the batch lists
FEEDBACK_FIELDS = ("request_id", "position", "actual")  # POST /<task>/feedback(_batch): an item's fields


class TooManyKeys(ValueError):
    """The body has more keys than any valid request of the route."""


def check_key_count(body: bytes) -> None:
    """Raise TooManyKeys if a JSON object in `body` has more than MAX_OBJECT_KEYS keys, or the body more than
    MAX_TOTAL_KEYS. Every key is followed by a colon, so a body with few colons is let through unparsed;
    a body that is not JSON is left for pydantic to describe."""
    if body.count(b":") <= MAX_OBJECT_KEYS:
        return
    total = 0

    def count(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal total
        total += len(pairs)
        if len(pairs) > MAX_OBJECT_KEYS:
            raise TooManyKeys(f"a JSON object has {len(pairs)} keys; at most {MAX_OBJECT_KEYS} are read")
        if total > MAX_TOTAL_KEYS:
            raise TooManyKeys(f"the body has more than {MAX_TOTAL_KEYS} keys")
        return dict(pairs)

    try:
        json.loads(body, object_pairs_hook=count)
    except TooManyKeys:
        raise
    except (ValueError, RecursionError):
        return  # not JSON: pydantic describes it


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_TEXT else f"{text[:MAX_TEXT - 3]}..."


def describe(error: ValidationError) -> tuple[list[dict[str, str]], int]:
    """The first MAX_ERRORS pydantic errors as [{"field": "records.3.households", "message": ...}] (a JSON error
    is field 'body'), strings truncated to MAX_TEXT; and how many errors there were in all."""
    detail = []
    for e in error.errors(include_url=False, include_input=False, include_context=False)[:MAX_ERRORS]:
        field = ".".join(str(part) for part in e["loc"]) or "body"
        detail.append({"field": _truncate(field), "message": _truncate(e["msg"])})
    return detail, error.error_count()


def metric_field(task: str, field: str) -> str:
    """The metric label of a failing field path: the schema field it names ('records.3.households' ->
    'households'; 'items.0.actual' -> 'actual'), 'body', 'records' or 'items' for the body itself, else UNKNOWN."""
    names = SCHEMAS[task].feature_names
    parts = [part for part in field.split(".") if not part.isdigit()]
    if parts and parts[0] in ("records", "items") and len(parts) > 1:
        parts = parts[1:]
    if not parts:
        return "body"
    if parts[0] in names or (len(parts) == 1 and parts[0] in FEEDBACK_FIELDS):
        return parts[0]
    return parts[0] if len(parts) == 1 and parts[0] in STRUCTURAL else UNKNOWN


def metric_labels(task: str) -> list[str]:
    """Every value `metric_field` can return for `task`: the closed set of the failure counter's labels."""
    return [*SCHEMAS[task].feature_names, *FEEDBACK_FIELDS, *STRUCTURAL, UNKNOWN]
