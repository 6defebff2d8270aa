"""The README's quickstart call, as written: the housing record it sends and the answer it prints."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import PROJECT_ROOT


def quickstart() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"curl [^\n]*http://127\.0\.0\.1:3000/housing/predict.*?\n```", readme, re.DOTALL)
    assert match, "README: no quickstart call to /housing/predict"
    return match.group(0)


def housing_record() -> dict[str, Any]:
    """The JSON body of the quickstart's `curl ... /housing/predict -d '...'`."""
    body = re.search(r"-d '(\{.*?\})'", quickstart(), re.DOTALL)
    assert body, "README: the quickstart call has no -d '{...}' body"
    return json.loads(body.group(1))


def housing_answer() -> dict[str, Any]:
    """The answer the quickstart prints after the call (`# {"prediction": ..., "model": ..., ...}`)."""
    printed = re.search(r'^# (\{"prediction".*\})$', quickstart(), re.MULTILINE)
    assert printed, "README: the quickstart prints no answer"
    return json.loads(printed.group(1).replace('..."', '"'))
