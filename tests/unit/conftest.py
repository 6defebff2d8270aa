"""The unit tier runs in process: a test here that starts a subprocess fails, so the tier stays fast.

The one exception is a syntax check that has no in-process equivalent (`bash -n`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

ALLOWED_COMMANDS = (("bash", "-n"),)


@pytest.fixture(autouse=True)
def no_subprocesses(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = subprocess.Popen.__init__

    def guarded(self, args, *rest, **kwargs) -> None:
        command = [args] if isinstance(args, str) else [str(a) for a in args]
        if tuple(command[:2]) not in ALLOWED_COMMANDS:
            raise AssertionError(f"a unit test started a subprocess ({' '.join(command)[:200]}); "
                                 "move the test to tests/pipeline, tests/service or tests/container")
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)
    yield
