"""Saved models in and out of the pipeline (joblib pickles of scikit-learn pipelines).

A pickle imports the classes it holds by their module path when it is loaded, so a stage that loads
a task's models also runs that task's model code (domain/estimators.py and its feature transformer):
dvc.yaml lists those files in the stage's deps, and tests/unit/test_stage_deps.py checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib

from stages.files import atomic_path


def load_model(path: Path | str) -> Any:
    return joblib.load(path)


def save_model(model: Any, path: Path | str) -> None:
    """Pickle `model` to `path` all-or-nothing."""
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)
