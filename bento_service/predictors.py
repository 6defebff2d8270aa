"""What predicts for a task in this worker: the compiled champion when it loads and agrees, else scikit-learn.

Why a module of its own: the choice must never cost a wrong answer. The compiled form (the model's custom
object "compiled", stage `compile`) is used only if ONNX Runtime loads it and it gives scikit-learn's
predictions (within domain.compiled.TOLERANCE_USD) on the model's packaged input example; if a call of it
ever fails or returns a non-finite value, that batch is predicted by scikit-learn instead. Either way the
server log and GET /model say which predictor serves and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from domain.compiled import FORMAT, TOLERANCE_USD, CompiledModel
from domain.explain import Model, arrays_model, frame_model
from domain.schema import SCHEMAS, Kind

logger = logging.getLogger("bentoml.prediction_service")

Records = Sequence[dict[str, Any]]


def sklearn_predict(task: str, estimator: Any) -> Callable[[Records], np.ndarray]:
    """Records -> predictions with the scikit-learn model (probabilities for a classifier)."""
    schema = SCHEMAS[task]
    predict = estimator.predict_proba if schema.kind is Kind.CLASSIFICATION else estimator.predict
    columns = schema.feature_names
    return lambda records: predict(pd.DataFrame.from_records(records, columns=columns))


def sklearn_fields(task: str, estimator: Any) -> Model:
    """Field matrices (domain/explain.py) -> predictions with the scikit-learn model."""
    schema = SCHEMAS[task]
    return frame_model(schema, estimator.predict_proba if schema.kind is Kind.CLASSIFICATION else estimator.predict)


@dataclass
class Predictor:
    """`predict(records)` for the micro-batcher, and what it is (for the log and GET /model)."""

    kind: str  # "compiled" or "scikit-learn"
    detail: str
    fallback: Callable[[Records], np.ndarray]
    compiled: CompiledModel | None = None
    failures: int = field(default=0)
    # the same model over field matrices (explanations, domain/explain.py): scikit-learn's, and the compiled
    # graph's array path when there is one
    fields_fallback: Model | None = None
    compiled_fields: Model | None = None

    def predict(self, records: Records) -> np.ndarray:
        if self.compiled is None:
            return self.fallback(records)
        return self._guarded(self.compiled.predict_records, self.fallback, records)

    def predict_fields(self, matrix: np.ndarray) -> np.ndarray:
        """Predictions for a field matrix (the rows of an explanation), the compiled graph if there is one."""
        if self.fields_fallback is None:
            raise RuntimeError("this predictor has no field-matrix model (built without load_predictor)")
        if self.compiled_fields is None:
            return self.fields_fallback(matrix)
        return self._guarded(self.compiled_fields, self.fields_fallback, matrix)

    def _guarded(self, compiled: Callable[[Any], np.ndarray], fallback: Any, rows: Any) -> np.ndarray:
        """The compiled path's predictions, or the fallback's if it fails or gives a non-finite value."""
        try:
            predictions = compiled(rows)
            if np.all(np.isfinite(predictions)):
                return predictions
            problem = "non-finite predictions"
        except Exception as exc:  # any failure of the compiled path: answer with scikit-learn
            problem = f"{type(exc).__name__}: {exc}"
        self.failures += 1
        logger.error("compiled predictor failed (%s); this batch is predicted by scikit-learn", problem)
        return fallback(rows)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "compiled_failures": self.failures}


def load_predictor(task: str, estimator: Any, custom_objects: dict[str, Any],
                   metadata: dict[str, Any]) -> Predictor:
    """The compiled predictor if the model carries a graph that loads and agrees with `estimator`, else
    scikit-learn; the reason is logged either way."""
    predictor = _choose(task, estimator, custom_objects, metadata)
    predictor.fields_fallback = sklearn_fields(task, estimator)
    if predictor.compiled is not None:
        predictor.compiled_fields = arrays_model(SCHEMAS[task], predictor.compiled.predict_arrays)
    return predictor


def _choose(task: str, estimator: Any, custom_objects: dict[str, Any], metadata: dict[str, Any]) -> Predictor:
    fallback = sklearn_predict(task, estimator)
    graph = custom_objects.get("compiled")
    packaged = metadata.get("compiled") or {}
    if graph is None:
        if packaged.get("reason"):  # the compile stage said why not (e.g. not a tree ensemble): as designed
            return _sklearn(task, fallback, f"not compiled: {packaged['reason']}", expected=True)
        return _sklearn(task, fallback, "the model carries no compiled form (packaged before stage `compile`?)")
    if packaged.get("format") != FORMAT:
        return _sklearn(task, fallback, f"compiled form {packaged.get('format')!r} is not {FORMAT!r}")
    try:
        compiled = CompiledModel(estimator.steps[0][1], graph)
        example = pd.DataFrame.from_records(metadata.get("input_example") or [],
                                            columns=SCHEMAS[task].feature_names)
        if example.empty:
            return _sklearn(task, fallback, "no input example to check the compiled form against")
        worst = float(np.max(np.abs(compiled.predict(example) - estimator.predict(example))))
    except Exception as exc:  # a graph that does not load: fall back, do not fail
        return _sklearn(task, fallback, f"compiled form does not load: {type(exc).__name__}: {exc}")
    if not worst <= TOLERANCE_USD:
        return _sklearn(task, fallback, f"compiled form disagrees with scikit-learn by ${worst:,.2f} on the "
                                        "input example")
    detail = f"ONNX Runtime ({packaged.get('trees', '?')} trees), checked against scikit-learn at load"
    logger.info("%s: serving the compiled model: %s", task, detail)
    return Predictor("compiled", detail, fallback, compiled)


def _sklearn(task: str, fallback: Callable[[Records], np.ndarray], reason: str, expected: bool = False) -> Predictor:
    (logger.info if expected else logger.warning)("%s: serving the scikit-learn model: %s", task, reason)
    return Predictor("scikit-learn", reason, fallback)
