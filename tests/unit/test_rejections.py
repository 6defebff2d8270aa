"""What a hostile body can cost is bounded: keys parsed, errors kept, metric labels (a closed set)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bento_service.rejections import (
    MAX_ERRORS,
    MAX_OBJECT_KEYS,
    MAX_TEXT,
    TooManyKeys,
    check_key_count,
    describe,
    metric_field,
    metric_labels,
)
from bento_service.schemas import task_api
from tests.support.tasks import HOUSING

HOUSING_API = task_api(HOUSING, max_batch_records=1000, max_feedback_items=1000)
HousingRecord, HousingBatch, HousingFeedbackBatch = HOUSING_API.record, HOUSING_API.batch, HOUSING_API.feedback_batch

ROW = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
       "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252}


def test_a_body_with_too_many_keys_is_refused_before_validation() -> None:
    check_key_count(json.dumps({**ROW, **{f"k{i}": 0 for i in range(MAX_OBJECT_KEYS - len(ROW))}}).encode())
    with pytest.raises(TooManyKeys, match=f"at most {MAX_OBJECT_KEYS}"):
        check_key_count(json.dumps({**ROW, **{f"k{i}": 0 for i in range(MAX_OBJECT_KEYS)}}).encode())
    check_key_count(json.dumps({"records": [ROW] * 1000}).encode())  # the largest valid batch
    with pytest.raises(TooManyKeys, match="more than"):
        check_key_count(json.dumps({"records": [ROW] * 3000}).encode())
    check_key_count(b'{"a": "::::' + b":" * 1000 + b'"')  # not JSON: left for pydantic to describe


def test_errors_are_bounded_and_truncated() -> None:
    body = json.dumps({**ROW, **{"x" * 10_000 + str(i): 0 for i in range(100)}})
    with pytest.raises(ValidationError) as error:
        HousingRecord.model_validate_json(body)
    detail, total = describe(error.value)
    assert total == 100 and len(detail) == MAX_ERRORS
    assert all(len(d["field"]) <= MAX_TEXT and len(d["message"]) <= MAX_TEXT for d in detail)


def test_metric_labels_come_from_a_closed_set() -> None:
    with pytest.raises(ValidationError) as error:
        HousingBatch.model_validate_json(json.dumps({"records": [
            {**ROW, "households": 0}, {k: v for k, v in ROW.items() if k != "latitude"}, {**ROW, "pool": 1},
            {**ROW, "évil\n{label}": 1}]}))
    detail, _ = describe(error.value)
    labels = {metric_field("housing", d["field"]) for d in detail}
    assert labels == {"households", "latitude", "unknown"}
    assert labels <= set(metric_labels("housing"))
    assert metric_field("housing", "body") == "body" and metric_field("housing", "records") == "records"
    assert metric_field("iris", "records.0.petal_width") == "petal_width"
    assert metric_field("iris", "median_income") == "unknown"


def test_feedback_fields_are_labels_of_their_own() -> None:
    """A bad `actual` in a feedback batch is counted as `actual`, not lost in `unknown`."""
    with pytest.raises(ValidationError) as error:
        HousingFeedbackBatch.model_validate_json(json.dumps({"items": [
            {"request_id": "r", "actual": -5}, {"request_id": "r", "position": -1, "actual": 1.0}, {"actual": 1.0}]}))
    detail, _ = describe(error.value)
    labels = {metric_field("housing", d["field"]) for d in detail}
    assert labels == {"actual", "position", "request_id"} and labels <= set(metric_labels("housing"))
    assert metric_field("housing", "items") == "items" and metric_field("housing", "items.0.colour") == "unknown"
