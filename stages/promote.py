"""Stage `promote@<task>`: the promotion gate. It decides what would be served; it never moves a registry alias.

The newcomer is the champion `evaluate` chose by the CV rule (models/<task>/champion.joblib). The incumbent is
the model version that holds the MLflow registry's `champion` alias for the task, loaded from the registry. Both
are scored on the same held-out test split, in the task's champion metric (`<task>.champion.metric`), if the
incumbent's run was evaluated on that very split (its MLflow dataset digest): else it may have trained on today's
test rows. The verdict (`decide`, a pure function) is "would promote" or "would keep", with the reason:
- no version holds the alias (an empty registry, a fresh clone): would promote;
- the newcomer is not worse than the incumbent by more than `<task>.promotion.tolerance`, or the incumbent was
  evaluated on another split (new raw data, other split params: no fair comparison exists): would promote;
- it is worse by more than that, or it is a model that was rolled back (`make rollback`): would keep.
When the newcomer is the incumbent itself (same model md5: the gate re-checks because a candidate changed or a
param was reverted), the outputs are those of the verdict that released it (PROMOTION_RECORD on its version), so
they are byte for byte those of that run; the printed line says what happened.

The stage only reads the registry. `make release` (stages/release.py) applies the committed verdict to it, so
`dvc exp run` (workspace, `--temp`, `--queue`) records its verdict in the experiment's metrics (`dvc exp show`)
and changes nothing anyone serves.

Outputs:
- models/<task>/served/: champion.joblib and challenger.joblib (what `profile`, `compile`, `explain` and
  `package` read) and served.json (which candidate each is, their md5s and test scores). The champion is the
  newcomer when the verdict is "would promote", else the incumbent, byte for byte the file its run logged
  (from the work tree or DVC's cache; the registry's copy only if neither has it). The challenger is the
  model to try next: the rejected newcomer when kept, else the runner-up candidate by the champion rule;
- metrics/promotion/<task>.json (git-tracked): the verdict, the reason, both models' candidate, md5 and test
  score, the tolerance; no run ids or versions, so the same registry state gives the same bytes;
- models/<task>/mlflow.json (not an output, git-ignored): the served models' MLflow run ids (stage `explain`
  attaches the importance plot to the champion's run).

Reproducibility: the outputs depend on the registry's state, which DVC does not see. DVC skips `promote` when its
deps are unchanged, and restores it from the run-cache when they match an earlier run, so after the registry
changed (a teammate released, `make rollback`) re-check it with `dvc repro -f -s promote@<task>`. A fresh clone
with an empty registry gets "would promote" everywhere, which is what the committed dvc.lock and
metrics/promotion/ record.

    python -m stages.promote <task>
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.champion import choose_champion
from stages.config import (
    candidate_dir,
    champion_info,
    champion_model,
    dvc_cached_file,
    load_params,
    mlflow_info,
    promotion_file,
    served_dir,
    split_file,
    task_argument,
    task_candidates,
)
from stages.files import atomic_dir, md5sum, read_json, write_json
from stages.lifetime import start_stage
from stages.registry import CHALLENGER, CHAMPION, Identity, Registry
from stages.scoring import LOWER_IS_BETTER

PROMOTE, KEEP = "would promote", "would keep"
DIGITS = 6


@dataclass(frozen=True)
class Scored:
    """One model as the gate sees it: which candidate, its model file's md5, its test score in the metric."""

    candidate: str
    md5: str
    test: float

    def record(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "model_md5": self.md5, "test": round(self.test, DIGITS)}


@dataclass(frozen=True)
class Decision:
    verdict: str  # PROMOTE or KEEP
    reason: str

    @property
    def promotes(self) -> bool:
        return self.verdict == PROMOTE


def decide(newcomer: Scored, incumbent: Scored | None, metric: str, tolerance: float,
           rolled_back: bool = False, comparable: bool = True) -> Decision:
    """The gate: promote the newcomer unless it is worse than the incumbent by more than `tolerance` (in `metric`,
    whichever direction is better for it), is the incumbent, or was rolled back. `comparable` False: the incumbent
    was evaluated on another test split (new raw data, another split seed or size), so some of today's test rows
    may be rows it trained on and its score would flatter it: the newcomer, chosen by CV, is promoted."""
    if tolerance < 0:
        raise ValueError(f"promotion tolerance must be >= 0, got {tolerance}")
    if incumbent is None:
        return Decision(PROMOTE, "no model holds the champion alias yet")
    if newcomer.md5 == incumbent.md5:
        return Decision(KEEP, f"the newcomer {newcomer.candidate} is the champion already (same model md5)")
    if rolled_back:
        return Decision(KEEP, f"the newcomer {newcomer.candidate} was rolled back once and is never promoted "
                              "again automatically")
    if not comparable:
        return Decision(PROMOTE, f"the champion {incumbent.candidate} was evaluated on another test split: its "
                                 f"score on this one is not comparable (it may have trained on these rows)")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    margin = round(sign * (newcomer.test - incumbent.test), 12)  # > 0: the newcomer is better
    scores = f"test {metric} {newcomer.test:.4f} (newcomer {newcomer.candidate}) vs {incumbent.test:.4f} " \
             f"(champion {incumbent.candidate})"
    if margin >= -tolerance:
        verdict = "better" if margin > 0 else "not worse" if margin == 0 else "worse, within the tolerance"
        return Decision(PROMOTE, f"{scores}: {verdict} (tolerance {tolerance:g})")
    return Decision(KEEP, f"{scores}: worse by {-margin:.4f}, more than the tolerance {tolerance:g}")


def runner_up(task: str, params: dict[str, Any], exclude: str) -> str | None:
    """The best candidate by the champion rule once `exclude` is out (None when it is the only one)."""
    rule = params[task]["champion"]
    summaries = {name: read_json(candidate_dir(task, name) / "summary.json")
                 for name in task_candidates(task, params) if name != exclude}
    return choose_champion(summaries, rule["metric"], rule.get("max_splits_per_row")) if summaries else None


def local_file(task: str, md5: str) -> Path | None:
    """A model file with this md5 on this machine: a trained candidate in the work tree, else DVC's cache (which
    holds every candidate this machine trained or pulled). Its bytes are what the run logged, so the served file
    and its tag do not depend on MLflow's serialisation."""
    for path in sorted((Path("models") / task / "candidates").glob("*/model.joblib")):
        if md5sum(path) == md5:
            return path
    cached = dvc_cached_file(md5)
    return cached if cached is not None and md5sum(cached) == md5 else None


@dataclass
class Served:
    """A model the gate serves in one role: who it is, where its bytes are, its scores and raw data."""

    scored: Scored
    file: Path | None  # None: only the registry has it (`model`)
    test: dict[str, Any]
    cv: dict[str, Any] | None
    raw_data_md5: str
    model: Any = None


def promote(task: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the gate against the registry (read only) and write every output."""
    from stages.models import load_model
    from stages.rawdata import read_split
    from stages.scoring import score

    metric, tolerance = params[task]["champion"]["metric"], float(params[task]["promotion"]["tolerance"])
    info = read_json(champion_info(task))
    newcomer_file = champion_model(task)
    newcomer = Scored(info["candidate"], md5sum(newcomer_file), float(info["test"][metric]))
    as_newcomer = Served(newcomer, newcomer_file, info["test"], info["cv"], info["raw_data_md5"])
    registry = Registry(task)

    X_test, y_test = read_split(task, "test")
    held = registry.version(CHAMPION)
    incumbent, incumbent_served = None, None
    if held is not None:
        identity = registry.identity(held)
        file = local_file(task, identity.md5)
        model = load_model(file) if file is not None else registry.load(held)
        scores = score(task, y_test.to_numpy(), model.predict(X_test))
        incumbent = Scored(identity.candidate, identity.md5, float(scores[metric]))
        incumbent_served = Served(incumbent, file, scores, None, registry.raw_data_md5(held), model)
    decision = decide(newcomer, incumbent, metric, tolerance,
                      rolled_back=incumbent is not None and registry.rolled_back(newcomer.md5),
                      comparable=held is None or registry.evaluated_on(held) == md5sum(split_file(task, "test")))
    incumbent_record = incumbent.record() if incumbent is not None else None
    unchanged = incumbent is not None and newcomer.md5 == incumbent.md5
    recorded = registry.promotion_record(held) if unchanged else None
    if recorded is not None:  # the champion re-checked, unchanged: the outputs of the verdict that released it
        decision, incumbent_record = Decision(recorded["verdict"], recorded["reason"]), recorded["incumbent"]

    served: dict[str, Served] = {}
    if decision.promotes or unchanged:
        served[CHAMPION] = as_newcomer
    else:
        served[CHAMPION] = incumbent_served
    if not unchanged and not decision.promotes:
        served[CHALLENGER] = as_newcomer
    else:
        name = runner_up(task, params, exclude=newcomer.candidate)
        if name is None:
            sys.exit(f"promote {task}: no runner-up to make the challenger: {task}.candidates has one candidate")
        path = candidate_dir(task, name) / "model.joblib"
        test = score(task, y_test.to_numpy(), load_model(path).predict(X_test))
        served[CHALLENGER] = Served(Scored(name, md5sum(path), float(test[metric])), path, test,
                                    read_json(path.parent / "summary.json")["cv"], info["raw_data_md5"])
    for role in served.values():  # a candidate file in the work tree gives the scores CV gave it
        summary = role.file.parent / "summary.json" if role.file is not None else None
        if role.cv is None and summary is not None and summary.is_file():
            role.cv = read_json(summary)["cv"]

    write_outputs(task, metric, tolerance, decision, newcomer.record(), incumbent_record, served)
    runs = {role: registry.run_of(Identity(entry.scored.candidate, entry.scored.md5))
            for role, entry in served.items()}
    tracked = read_json(mlflow_info(task)) if mlflow_info(task).is_file() else {}
    for role, run in runs.items():
        tracked[f"{role}_run_id"] = run[0] if run else None
    write_json(mlflow_info(task), tracked)  # not an output: run ids differ on every machine
    return {"decision": decision, "served": served, "unchanged": unchanged, "held": held}


def write_outputs(task: str, metric: str, tolerance: float, decision: Decision, newcomer: dict[str, Any],
                  incumbent: dict[str, Any] | None, served: dict[str, Served]) -> None:
    """models/<task>/served/ and metrics/promotion/<task>.json, each all-or-nothing, deterministic."""
    import joblib

    with atomic_dir(served_dir(task)) as out:
        for role, entry in served.items():
            if entry.file is not None:
                shutil.copyfile(entry.file, out / f"{role}.joblib")
            else:  # the model's bytes are nowhere on this machine: the model as the registry gave it
                joblib.dump(entry.model, out / f"{role}.joblib")
        write_json(out / "served.json", {
            "task": task, "metric": metric,  # no verdict: re-running the gate on the same models changes nothing
            # model_md5: the model's identity, the md5 of the file its MLflow run logged (the served file's own,
            # unless only the registry had the model)
            **{role: {"candidate": entry.scored.candidate, "model_md5": entry.scored.md5,
                      "raw_data_md5": entry.raw_data_md5, "test": entry.test, "cv": entry.cv}
               for role, entry in served.items()}})
    write_json(promotion_file(task), {
        "task": task, "metric": metric, "tolerance": tolerance, "verdict": decision.verdict,
        "reason": decision.reason, "newcomer": newcomer, "incumbent": incumbent,
        "champion": served[CHAMPION].scored.record(), "challenger": served[CHALLENGER].scored.record()})


def summary_line(task: str, result: dict[str, Any]) -> str:
    """What the gate did, in one line (an unchanged champion is said to be one, whatever its record says)."""
    decision, served, held = result["decision"], result["served"], result["held"]
    champion, challenger = served[CHAMPION].scored.candidate, served[CHALLENGER].scored.candidate
    if result["unchanged"]:
        return (f"promote {task}: the newcomer {champion} is the registry's champion already (version "
                f"{held.version}): nothing to decide; metrics/promotion/{task}.json keeps the verdict that released "
                f"it; serves champion {champion}, challenger {challenger}")
    return (f"promote {task}: {decision.verdict}: {decision.reason}; serves champion {champion}, challenger "
            f"{challenger} (`make release` applies this to the registry)")


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    print(summary_line(args.task, promote(args.task, load_params())))


if __name__ == "__main__":
    main()
