"""Put the previous champion back in service: `make rollback TASK=housing` (this module is its first step).

Moves the registry's `champion` alias back to the version `previous-champion` names (the incumbent the last
promotion replaced, recorded by stage `promote`), tags the rolled-back version `rolled_back=true` and points
`challenger` at it: the gate (stages/promote.py) never promotes that model again automatically, it stays the
challenger until a different model wins. `previous-champion` then moves one step further back (the restored
version's own `previous_champion` tag), or is removed, so a second rollback goes further or fails clearly.

The served models are promote's outputs, so `make rollback` then runs `dvc repro -f -s promote@<task>`
(DVC cannot see the registry changed), `dvc repro` (profile, compile, explain, package) and `make bento`.

    python -m stages.rollback housing
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from domain.schema import SCHEMAS, TASKS
from stages.promote import CHALLENGER, CHAMPION, PREVIOUS, ROLLED_BACK


def rollback(task: str) -> tuple[str, str]:
    """Move the aliases back; (rolled-back version, restored version). SystemExit with the reason if impossible."""
    from mlflow.tracking import MlflowClient

    from stages import tracking

    tracking.configure()
    name = SCHEMAS[task].model_name
    current, previous = tracking.alias_version(name, CHAMPION), tracking.alias_version(name, PREVIOUS)
    if current is None:
        sys.exit(f"rollback {task}: no version of {name} holds the champion alias in {tracking.tracking_uri()}: "
                 "nothing to roll back")
    if previous is None or previous.version == current.version:
        sys.exit(f"rollback {task}: no previous champion recorded for {name} (alias {PREVIOUS!r}) in "
                 f"{tracking.tracking_uri()}: version {current.version} stays the champion")
    client = MlflowClient()
    client.set_model_version_tag(name, current.version, ROLLED_BACK, "true")
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.set_registered_model_alias(name, CHALLENGER, current.version)
    before = further_back(previous.version, current.version,
                          lambda version: client.get_model_version(name, version).tags)
    if before is not None:
        client.set_registered_model_alias(name, PREVIOUS, before)
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    return current.version, previous.version


def further_back(restored: str, rolled_back: str, tags_of: Callable[[str], dict[str, str]]) -> str | None:
    """The version a next rollback would restore: down the chain of `previous_champion` tags from the restored
    version, skipping versions that were rolled back (this one included) and stopping where the chain loops (a
    model promoted twice names its own successor); None when nothing is left."""
    seen, version = {restored, rolled_back}, tags_of(restored).get("previous_champion")
    while version and version not in seen:
        seen.add(version)
        tags = tags_of(version)
        if tags.get(ROLLED_BACK) != "true":
            return version
        version = tags.get("previous_champion")
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    args = parser.parse_args(argv)
    rolled_back, restored = rollback(args.task)
    print(f"rollback {args.task}: champion alias back on version {restored}; version {rolled_back} tagged "
          f"{ROLLED_BACK}=true (now the challenger); next: dvc repro -f -s promote@{args.task} && dvc repro")


if __name__ == "__main__":
    main()
