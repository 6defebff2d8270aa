"""Where a model came from: the git commit of the code that made it.

Its own module so that stages needing only this (package) do not import MLflow.
"""

from __future__ import annotations

import subprocess
from functools import cache


@cache
def git_commit() -> str:
    """HEAD of the repository the stage runs in, or "unknown" outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
