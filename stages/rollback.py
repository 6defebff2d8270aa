"""Put the previous champion back in service: `make rollback TASK=<task>` (this module is its first step).

Moves the registry's `champion` alias back to the version `previous-champion` names (the champion the last
release replaced, recorded by `make release`), tags the rolled-back version `rolled_back=true` and points
`challenger` at it: the gate (stages/promote.py) never promotes that model again automatically, it stays the
challenger until a different model wins. `previous-champion` then moves one step further back (the restored
version's own `previous_champion` tag), or is removed, so a second rollback goes further or fails clearly.

The served models are promote's outputs, so `make rollback` then runs `dvc repro -f -s promote@<task>`
(DVC cannot see the registry changed: the gate now keeps the restored champion and makes the rolled-back model
the challenger), `dvc repro` (profile, compile, explain, package: models/bento_models.json names the restored
champion's tag) and `make bento`; a server started afterwards serves the restored champion. Prints what each
alias holds. With nothing to roll back to it says so, exits 1 and changes nothing.

    python -m stages.rollback <task>
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from stages.config import task_argument
from stages.registry import CHALLENGER, CHAMPION, PREVIOUS, PREVIOUS_TAG, ROLLED_BACK, Registry


def rollback(task: str) -> tuple[str, str, Registry]:
    """Move the aliases back; (rolled-back version, restored version, registry). SystemExit with the reason,
    changing nothing, if there is nothing to roll back to."""
    registry = Registry(task)
    current, previous = registry.version(CHAMPION), registry.version(PREVIOUS)
    if current is None:
        sys.exit(f"rollback {task}: no version of {registry.name} holds the champion alias in {registry.uri}: "
                 "nothing to roll back, nothing changed")
    if previous is None or previous.version == current.version:
        sys.exit(f"rollback {task}: no previous champion recorded for {registry.name} (alias {PREVIOUS!r}) in "
                 f"{registry.uri}: version {current.version} stays the champion, nothing changed")
    rolled_back, restored = str(current.version), str(previous.version)
    registry.tag_version(rolled_back, {ROLLED_BACK: "true"})
    registry.set_alias(CHAMPION, restored)
    registry.set_alias(CHALLENGER, rolled_back)
    before = further_back(restored, rolled_back, registry.version_tags)
    if before is not None:
        registry.set_alias(PREVIOUS, before)
    else:
        registry.drop_alias(PREVIOUS)
    return rolled_back, restored, registry


def further_back(restored: str, rolled_back: str, tags_of: Callable[[str], dict[str, str]]) -> str | None:
    """The version a next rollback would restore: down the chain of `previous_champion` tags from the restored
    version, skipping versions that were rolled back (this one included) and stopping where the chain loops (a
    model promoted twice names its own successor); None when nothing is left."""
    seen, version = {restored, rolled_back}, tags_of(restored).get(PREVIOUS_TAG)
    while version and version not in seen:
        seen.add(version)
        tags = tags_of(version)
        if tags.get(ROLLED_BACK) != "true":
            return version
        version = tags.get(PREVIOUS_TAG)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    rolled_back, restored, registry = rollback(args.task)
    print(f"rollback {args.task}: champion alias back on version {restored}; version {rolled_back} tagged "
          f"{ROLLED_BACK}=true. Registry {registry.name}: {registry.describe()}")


if __name__ == "__main__":
    main()
