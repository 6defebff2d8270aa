"""`make release`: apply the gate's verdict in the work tree to the MLflow registry. The only command that promotes.

Stage `promote` decides what is served (models/<task>/served/, metrics/promotion/<task>.json) and only reads the
registry, so experiments never move an alias. Releasing makes the registry say what the work tree serves:
- the served champion's version holds `champion` (registered now if it is not yet); when that moves the alias,
  the version it replaced becomes `previous-champion` (what `make rollback` restores) and the released version
  records the verdict that released it (PROMOTION_RECORD);
- the served challenger's version holds `challenger`.
Idempotent: a second release changes nothing and says so. It refuses, changing nothing, when the registry moved
since the gate ran (its champion is neither the incumbent the verdict was made against nor the served champion:
re-run the gate), when the gate refused, when the model to release was rolled back, or when the registry lacks the
champion this machine released before (stages/released.py: a deleted database, another tracking URI).
Each release records what it made the champion (models/<task>/released.json); `--start-over` deletes that
record, on purpose, so the next gate decides as on a fresh clone (`make start-over TASK=<task>`).

    python -m stages.release            # every task
    python -m stages.release <task>
    python -m stages.release --start-over <task>...
"""

from __future__ import annotations

import argparse
import json
import sys

from stages.config import declared_tasks, promotion_file, served_info, task_argument
from stages.files import read_json
from stages.promote import PROMOTE, REFUSED
from stages.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    PREVIOUS_TAG,
    PROMOTION_RECORD,
    ROLLED_BACK,
    Identity,
    Registry,
)
from stages.released import Vanished, check_present, forget, remember


class Refused(Exception):
    """The verdict cannot be applied to the registry as it is now; the message says why and what to run."""


def release(task: str) -> tuple[list[str], Registry]:
    """Move the task's aliases to what the work tree serves; the changes made (empty: nothing to do)."""
    registry = Registry(task)
    held = registry.version(CHAMPION)
    try:
        check_present(task, registry.uri, held is not None)
    except Vanished as exc:
        raise Refused(str(exc)) from None
    try:
        verdict = read_json(promotion_file(task))
        if verdict["verdict"] == REFUSED:
            raise Refused(f"the gate refused: {verdict['reason']}")
        served = read_json(served_info(task))
    except FileNotFoundError as exc:
        raise Refused(f"{exc.filename} is missing: run `dvc repro` first") from None
    if served[CHAMPION]["candidate"] != verdict["champion"]["candidate"]:
        raise Refused(f"{served_info(task)} and {promotion_file(task)} disagree on the champion: run `dvc repro`")
    champion, challenger = Identity.of(verdict["champion"]), Identity.of(verdict["challenger"])
    incumbent = Identity.of(verdict["incumbent"]) if verdict["incumbent"] else None
    current = registry.identity(held) if held is not None else None
    rerun = f"re-run the gate: `dvc repro -f -s promote@{task} && dvc repro`, then `make release`"
    if current != champion and not (verdict["verdict"] == PROMOTE and current == incumbent):
        now = f"version {held.version}, {current}" if held is not None else "no champion"
        made = f"against {incumbent}" if incumbent is not None else "with no champion in the registry"
        raise Refused(f"the registry's champion ({now}) is not the one the gate's verdict was made {made}; {rerun}")

    changes = []
    if current == champion:
        champion_version = str(held.version)
    else:
        champion_version = registry.register(champion)
        if registry.version_tags(champion_version).get(ROLLED_BACK) == "true":
            raise Refused(f"version {champion_version} ({champion}) was rolled back; {rerun}, or move the alias "
                          "by hand if you mean to serve it again")
        if held is not None:
            registry.set_alias(PREVIOUS, str(held.version))
            registry.tag_version(champion_version, {PREVIOUS_TAG: str(held.version)})
        record = {key: verdict[key] for key in ("verdict", "reason", "incumbent")}
        registry.tag_version(champion_version, {PROMOTION_RECORD: json.dumps(record, sort_keys=True),
                                                "promotion": verdict["verdict"],
                                                "promotion_reason": verdict["reason"]})
        registry.set_alias(CHAMPION, champion_version)
        changes.append(f"champion -> version {champion_version} ({champion.candidate})")
    remember(task, registry.uri, champion_version, verdict["champion"])
    challenger_version = registry.register(challenger)
    held_challenger = registry.version(CHALLENGER)
    if held_challenger is None or str(held_challenger.version) != challenger_version:
        registry.set_alias(CHALLENGER, challenger_version)
        changes.append(f"challenger -> version {challenger_version} ({challenger.candidate})")
    return changes, registry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", metavar="task", type=task_argument,
                        help="a task params.yaml lists (default: every task)")
    parser.add_argument("--start-over", action="store_true",
                        help="forget what this machine released for the task (a registry lost on purpose)")
    args = parser.parse_args(argv)
    if args.start_over:
        start_over(args.tasks)
        return
    failed = False
    for task in args.tasks or declared_tasks():
        try:
            changes, registry = release(task)
        except Refused as exc:
            print(f"release {task}: refused, nothing changed: {exc}", file=sys.stderr)
            failed = True
            continue
        what = "; ".join(changes) if changes else "already released, nothing changed"
        print(f"release {task}: {what}. Registry {registry.name}: {registry.describe()}")
    sys.exit(1 if failed else 0)


def start_over(tasks: list[str]) -> None:
    """Forget the released champion of each named task, so the next gate decides against the registry as it is
    (a registry lost for good, a move to a new tracking server)."""
    if not tasks:
        sys.exit("release --start-over: name the task(s) to start over (make start-over TASK=<task>)")
    for task in tasks:
        what = "forgot the champion this machine released" if forget(task) else "no release recorded here"
        print(f"release {task}: started over: {what}; now `dvc repro -f -s promote@{task} && dvc repro`, "
              "then `make release`")


if __name__ == "__main__":
    main()
