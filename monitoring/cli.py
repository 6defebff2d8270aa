"""The exit-code contract both `make monitor` tools share: a verdict, a problem (2) or a bug (3), never mixed up.

A problem with the log or the arguments is one line on stderr and exit 2 (argparse's own errors are 2 as well);
an unexpected exception is its traceback and exit 3, so a crash never reads as a verdict (Python's own exit code
for one would be 1, the drift verdict).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

from domain.schema import DeclarationError, task_names
from monitoring.logquery import LogProblem

T = TypeVar("T")

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


def read_settings(params: Path, section: str, from_params: Callable[[dict], T]) -> T:
    """A tool's settings from params.yaml; a missing file, block or value is a LogProblem naming `section`."""
    try:
        return from_params(yaml.safe_load(params.read_text(encoding="utf-8")))
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise LogProblem(f"cannot read {section} from {params}: {exc!r}") from None


def declared_task(name: str) -> str:
    """argparse type of `--task`: a task params.yaml declares. Anything else is argparse's usage error (exit 2)
    naming the declared tasks, so a typo reads as a bad argument, never as a traceback or a verdict."""
    try:
        tasks = task_names()
    except DeclarationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if name not in tasks:
        raise argparse.ArgumentTypeError(f"unknown task {name!r}; the declared tasks (params.yaml tasks): "
                                         f"{', '.join(tasks)}")
    return name


def add_task_argument(parser: argparse.ArgumentParser) -> None:
    """A required `--task`, checked against the declared tasks when the arguments are parsed."""
    parser.add_argument("--task", type=declared_task, required=True, help=TASK_HELP)


TASK_HELP = "a task params.yaml `tasks` declares"
