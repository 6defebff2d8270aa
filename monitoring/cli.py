"""The exit-code contract both `make monitor` tools share: a verdict, a problem (2) or a bug (3), never mixed up.

A problem with the log or the arguments is one line on stderr and exit 2 (argparse's own errors are 2 as well);
an unexpected exception is its traceback and exit 3, so a crash never reads as a verdict (Python's own exit code
for one would be 1, the drift verdict).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from monitoring.logquery import LogProblem

EXIT_PROBLEM, EXIT_BUG = 2, 3


def guarded(name: str, run: Callable[[], int]) -> int:
    """`run()`'s exit code, or EXIT_PROBLEM / EXIT_BUG with the message `name: ...` on stderr."""
    try:
        return run()
    except LogProblem as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except Exception:
        traceback.print_exc()
        print(f"{name}: internal error (a bug, not a verdict); see the traceback above", file=sys.stderr)
        return EXIT_BUG
