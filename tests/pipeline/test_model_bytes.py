"""A saved model's bytes depend on the model, not on what the process unpickled before fitting it.

An estimator class's instances share their attribute names (CPython's split instance dicts); a process that
unpickled a fitted estimator first (a model loaded from the registry, a fit a Dask worker sent back) holds
copies of those names rather than the interned ones, and pickle writes a copy where it would have referred back.
Each case runs in its own interpreter, as a stage does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_ROOT

FIT_AND_SAVE = """
import sys
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from stages.models import load_model, save_model

if len(sys.argv) > 2:  # unpickle a fitted forest before this process makes any tree of its own
    load_model(sys.argv[2])
rng = np.random.default_rng(0)
X, y = rng.normal(size=(200, 4)), rng.normal(size=200)
save_model(RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y), sys.argv[1])
"""


def fit_and_save(path: Path, *first_load: Path) -> bytes:
    subprocess.run([sys.executable, "-c", FIT_AND_SAVE, str(path), *map(str, first_load)], cwd=PROJECT_ROOT,
                   check=True, capture_output=True, timeout=120)
    return path.read_bytes()


def test_a_model_fitted_after_an_unpickled_one_has_the_same_bytes(tmp_path: Path) -> None:
    fresh = fit_and_save(tmp_path / "fresh.joblib")
    after_a_load = fit_and_save(tmp_path / "after-a-load.joblib", tmp_path / "fresh.joblib")
    assert after_a_load == fresh
