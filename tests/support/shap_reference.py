"""shap's exact explainer: the reference the project's own Shapley code (domain/explain.py) is checked against.

shap is a test-only dependency (requirements-test.txt): the service and stage `explain` compute exact Shapley
values with numpy. `shap.explainers.Exact` with an independent masker over the same background plays the same
game (the interventional value function), so the two must agree to rounding.
"""

from __future__ import annotations

import numpy as np

from domain.explain import Model


def shap_values(model: Model, background: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """shap's exact Shapley values of `rows` (rows, fields[, classes]) against `background`."""
    import shap

    masker = shap.maskers.Independent(background, max_samples=len(background))
    return np.asarray(shap.explainers.Exact(model, masker)(rows, silent=True).values)
