"""The declared tasks, one per line, for shell code: the Makefile, the workflows and the CronJob loop over them.

    python -m domain.tasks [--first] [--no-download]

Scripts ask this instead of naming tasks, so adding or removing a task in params.yaml changes what they run
without an edit. `--first`: only the first task of params.yaml `tasks` (the default of `make monitor`).
`--no-download`: only the tasks whose data needs no network (a file in the repository or a scikit-learn dataset),
what a quick CI run can train. A declaration that cannot be read is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from domain.schema import DeclarationError, TaskSchema, load_schema, task_names

DOWNLOADED = "url"  # the source key of data fetched over the network (tasks/<task>.yaml `source`)


def needs_download(schema: TaskSchema) -> bool:
    """Whether fetching the task's raw data goes over the network."""
    return DOWNLOADED in schema.source


def selected(first: bool = False, no_download: bool = False, root: Path | None = None) -> list[str]:
    """The declared tasks in params.yaml order, filtered as the flags say. Raises DeclarationError."""
    tasks = list(task_names(root))
    if no_download:
        tasks = [task for task in tasks if not needs_download(load_schema(task, root))]
    return tasks[:1] if first else tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", action="store_true", help="only the first task")
    parser.add_argument("--no-download", action="store_true", help="only tasks whose data needs no network")
    args = parser.parse_args(argv)
    try:
        tasks = selected(args.first, args.no_download)
    except DeclarationError as exc:
        print(f"domain.tasks: {exc}", file=sys.stderr)
        return 2
    print("\n".join(tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
