"""Where stage `explain` writes, in a module of its own: `package` reads the background without importing the
stage (and with it MLflow and the tracking code, which would all become package's deps).

Not in stages/config.py: every stage depends on that file, so adding these there would retrain every model."""

from __future__ import annotations

from pathlib import Path


def explain_background(task: str) -> Path:
    """The rows explanations are measured against (packaged with the model as "explain_background")."""
    return Path("models") / task / "explain_background.json"


def importance_plot(task: str) -> Path:
    """The champion's global importance: mean |contribution| per raw field on test rows, plot data."""
    return Path("metrics") / "plots" / "importance" / f"{task}.csv"
