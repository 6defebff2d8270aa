"""params.yaml validated as a whole (stages/params_schema.py): the project's file passes, a typo or a bad value
anywhere is refused in one line naming the file, the key path, the value and what is allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from stages.candidates import ESTIMATORS
from stages.params_schema import ESTIMATOR_NAMES, ParamsError, validate
from tests.support import PROJECT_ROOT

PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def refusal(change: Any) -> str:
    params = copy.deepcopy(PARAMS)
    change(params)
    with pytest.raises(ParamsError) as caught:
        validate(params)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("params.yaml: ")
    return message


def test_the_projects_params_are_valid_and_every_estimator_is_known() -> None:
    validate(PARAMS)
    assert set(ESTIMATOR_NAMES) == set(ESTIMATORS)


def test_a_typo_names_the_key_path_and_the_allowed_keys() -> None:
    assert refusal(lambda p: p["cv"].update(fold=p["cv"].pop("folds"))) == (
        "params.yaml: cv.folds: missing (required); cv.fold: unknown key, a typo? (allowed: folds, seed, n_jobs)")
    assert "candidates.iris-logreg.search.n_iterr: unknown key" in refusal(
        lambda p: p["candidates"]["iris-logreg"]["search"].update(n_iterr=3))
    assert "hosing: unknown key" in refusal(lambda p: p.update(hosing={}))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p["split"].update(test_size=-0.2),
     "split.test_size: -0.2 is not allowed: input should be greater than 0"),
    (lambda p: p["housing"]["promotion"].update(tolerance="x"), "housing.promotion.tolerance: 'x' is not allowed"),
    (lambda p: p["housing"]["promotion"].pop("floor"), "housing.promotion.floor: missing (required)"),
    (lambda p: p["iris"]["data"].update(max_duplicate_share=2), "iris.data.max_duplicate_share: 2 is not allowed"),
    (lambda p: p["candidates"]["iris-lda"].update(estimator="lda"), "candidates.iris-lda.estimator: 'lda' is not"),
    (lambda p: p["candidates"]["iris-lda"].update(task="irs"), "candidates.iris-lda.task: 'irs' is not allowed"),
    (lambda p: p["tasks"].append("wine"), "wine: listed under `tasks` but has no block of its own"),
])
def test_a_bad_value_names_the_value_and_what_is_allowed(change: Any, expected: str) -> None:
    assert expected in refusal(change)
