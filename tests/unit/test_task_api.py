"""The service's request and answer models come from a task's declaration, whatever its field names."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bento_service.rejections import describe
from bento_service.schemas import task_api
from domain.schema import DeclarationError, parse_declaration
from tests.support.tasks import HOUSING, IRIS

SOURCE = {"path": "data/raw.csv", "md5": "0" * 32}
ODD = {"unit/price": {"minimum": 0, "maximum": 10}, "2nd floor": {"minimum": 0, "maximum": 10},
       "a.b": {"minimum": 0, "maximum": 10, "optional": True}, "json": {"categories": ["x", "y"]},
       "model_size": {"minimum": 0, "maximum": 5}}


def _declaration(**changes: object) -> dict:
    return {"kind": "regression", "source": SOURCE, "fields": ODD,
            "target": {"name": "Price (k$)", "minimum": 0, "maximum": 1000},
            "not_greater_than": [["2nd floor", "unit/price"]], **changes}


def test_fields_that_are_not_identifiers_are_sent_validated_and_dumped_under_their_declared_names() -> None:
    api = task_api(parse_declaration("odd", _declaration(), "tasks/odd.yaml"), 10, 10)
    record = {"unit/price": 5.0, "2nd floor": 1.0, "a.b": None, "json": "x", "model_size": 2.0}
    parsed = api.record.model_validate_json(json.dumps(record))
    assert parsed.model_dump(by_alias=True) == record
    assert set(api.record.model_json_schema()["properties"]) == set(record)
    with pytest.raises(ValidationError) as error:  # the attribute names are not accepted in their place
        api.record.model_validate_json(json.dumps({**record, "field_0": 5.0}))
    assert [d["field"] for d in describe(error.value)[0]] == ["field_0"]
    with pytest.raises(ValidationError) as error:
        api.record.model_validate_json(json.dumps({**record, "unit/price": 11.0}))
    assert [d["field"] for d in describe(error.value)[0]] == ["unit/price"]
    with pytest.raises(ValidationError) as error:  # the cross-field rule names the declared fields
        api.record.model_validate_json(json.dumps({**record, "2nd floor": 6.0}))
    assert "2nd floor (6) must not exceed unit/price (5)" in describe(error.value)[0][0]["message"]


def test_a_target_that_is_not_an_identifier_is_answered_as_prediction() -> None:
    api = task_api(parse_declaration("odd", _declaration(), "tasks/odd.yaml"), 10, 10)
    assert list(api.prediction.model_fields) == ["prediction", "model", "arm", "request_id"]
    with pytest.raises(DeclarationError, match=r"serving\.answer: 'model' must be an identifier other than"):
        parse_declaration("odd", _declaration(serving={"answer": "model"}), "tasks/odd.yaml")


def test_housing_and_iris_keep_their_model_names_and_answers() -> None:
    housing, iris = task_api(HOUSING, 1000, 1000), task_api(IRIS, 1000, 1000)
    assert [m.__name__ for m in (housing.record, housing.batch, housing.prediction, housing.batch_prediction,
                                 housing.explanation, housing.feedback, housing.feedback_batch)] == [
        "HousingRecord", "HousingBatch", "HousingPrediction", "HousingBatchPrediction", "HousingExplanation",
        "HousingFeedback", "HousingFeedbackBatch"]
    assert list(housing.prediction.model_fields) == ["prediction", "model", "arm", "request_id"]
    assert list(housing.record.model_fields) == HOUSING.feature_names
    assert list(iris.prediction.model_fields) == ["species", "probabilities", "model", "arm", "request_id"]
    assert list(iris.explanation.model_fields)[:4] == ["species", "prediction", "base_value", "contributions"]
    assert set(housing.routes()) == {f"/housing/{r}" for r in
                                     ("predict", "predict_batch", "explain", "feedback", "feedback_batch")}
