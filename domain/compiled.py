"""The compiled form of a tree-ensemble champion: its feature step in numpy, its trees in ONNX Runtime.

Why it exists: scikit-learn's HistGradientBoosting predicts tree by tree from a Python loop, so the 3-seed
housing champion (900 trees) costs milliseconds per call whatever the rows; ONNX Runtime walks the same trees
in one native call. The graph (built by the pipeline's `compile` stage, stages/compile.py) holds the trees,
the seeds' averaging, the baseline and the clipping to the training target's range, so it answers in dollars.
The feature step is the champion's own fitted transformer, called on arrays (`transform_arrays`): one feature
implementation for training and serving, and no pandas on the serving path.

Shared by the pipeline (which checks the compiled form against scikit-learn before shipping it) and the
service (which checks it again when loading, and falls back to scikit-learn if anything is off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domain.features import encode_frame, encode_records

FORMAT = "onnx-tree-ensemble/1"  # bump when the graph's inputs or meaning change: old graphs are then refused
INPUT = "features"
OUTPUT = "prediction"
# A compiled prediction may differ from scikit-learn's by float rounding only (summation order): far below this.
TOLERANCE_USD = 1.0


class CompiledModel:
    """`predict` like the scikit-learn pipeline it was compiled from, plus the array and record paths.

    `features` is the pipeline's fitted feature step (it must offer `transform_arrays`); `graph` the ONNX
    bytes of stages/compile.py. ONNX Runtime runs with one thread, as every service worker does
    (OMP_NUM_THREADS=1): a pool of its own would fight the event loop for the cores.
    """

    def __init__(self, features: Any, graph: bytes) -> None:
        import onnxruntime as ort  # a serving dependency only: the pipeline's other stages never need it

        if not hasattr(features, "transform_arrays"):
            raise TypeError(f"{type(features).__name__} has no transform_arrays: no fast feature path")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings would land in the server log per session
        self.features = features
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._outputs = [OUTPUT]

    def predict_arrays(self, numeric: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        matrix = self.features.transform_arrays(numeric, ocean)
        return self._session.run(self._outputs, {INPUT: matrix})[0][:, 0]

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predictions for raw request records (dicts of the schema's fields): the serving path."""
        return self.predict_arrays(*encode_records(records))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for a DataFrame of raw fields, as `Pipeline.predict` takes it."""
        return self.predict_arrays(*encode_frame(X))


def disagreement_usd(compiled: CompiledModel, reference: Any, X: Any) -> float:
    """The largest absolute difference between the compiled and the scikit-learn predictions on X."""
    return float(np.max(np.abs(compiled.predict(X) - reference.predict(X)))) if len(X) else 0.0
