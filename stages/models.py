"""Saved models in and out of the pipeline (joblib pickles of scikit-learn pipelines).

A pickle imports the classes it holds by their module path when it is loaded, so a stage that loads
a task's models also runs that task's model code (domain/estimators.py and its feature transformer):
dvc.yaml lists those files in the stage's deps, and tests/unit/test_stage_deps.py checks it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import joblib
from sklearn.base import BaseEstimator

from stages.files import atomic_path


def load_model(path: Path | str) -> Any:
    return joblib.load(path)


def save_model(model: Any, path: Path | str) -> None:
    """Pickle `model` to `path` all-or-nothing."""
    with atomic_path(path) as tmp:
        dump_model(model, tmp)


def dump_model(model: Any, path: Path | str) -> None:
    """joblib.dump of `model`, its bytes a function of the model alone.

    A pickle writes a string once and refers back to it when the same object comes again, so its bytes depend on
    which equal strings are one object. An estimator's attribute names are the shared keys of its class's
    instance dicts, and come from whichever instance the process made first: an unpickled one (a model loaded
    from the registry, for instance) leaves copies that are not the interned names the code sets. Interning
    every estimator's attribute names first gives the same bytes whatever the process did before.
    """
    intern_attribute_names(model)
    joblib.dump(model, path)


def intern_attribute_names(value: Any) -> None:
    """Give every scikit-learn estimator in `value` (nested in estimators, lists, tuples and dicts) an instance
    dict whose keys are interned strings."""
    seen: set[int] = set()
    todo = [value]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, BaseEstimator):
            item.__dict__ = {sys.intern(name) if type(name) is str else name: attribute
                             for name, attribute in vars(item).items()}
            todo.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
