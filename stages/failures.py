"""A stage that dies of a full disk says so in one line, naming the path, instead of a traceback.

Installed by every stage's entry point (`start_stage`, and `compile`'s main): an uncaught OSError with errno
ENOSPC, also when another exception wraps it (MLflow, joblib), prints
`<stage>: no space left on device writing <path>: free space there, then run `make run` again` and the process
exits 1, so `dvc repro` stops at that stage. Outputs are written beside their destination and renamed
(stages/files.py), so nothing half-written is left; the rerun completes from where it stopped.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from types import TracebackType


def no_space(exc: BaseException | None) -> OSError | None:
    """The ENOSPC error `exc` is or was raised from (its cause or context chain), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def message(error: OSError) -> str:
    """`<stage>: no space left on device writing <path>: ...`, the path as the OS named it (else the cwd)."""
    stage = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem
    path = error.filename or f"under {Path.cwd()}"
    return (f"{stage}: no space left on device writing {path}: free space there, then run `make run` again "
            "(it resumes where it stopped)")


def _hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    error = no_space(value)
    if error is None:
        sys.__excepthook__(kind, value, traceback)
        return
    print(message(error), file=sys.stderr)


def install() -> None:
    """Report an uncaught full-disk error in one line (the process still exits 1)."""
    sys.excepthook = _hook
