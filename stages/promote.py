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

PROMOTE, KEEP, REFUSED = "would promote", "would keep", "refused"
DIGITS = 6
PERFECT = 1e-9  # a CV mean this close to the metric's best value, with a spread this small, is suspicious


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


def below_floor(score: float, floor: float, metric: str) -> bool:
    """Whether a test score is worse than the floor (for an error metric the floor is a ceiling)."""
    return score > floor if metric in LOWER_IS_BETTER else score < floor


def perfect_cv(cv: dict[str, Any], metric: str) -> bool:
    """A cross-validated score at the metric's best value with no spread across folds: every fold predicted
    perfectly, which real regression data does not allow (a constant or leaked target does)."""
    mean, spread = float(cv[metric]["mean"]), float(cv[metric]["std"])
    best = 0.0 if metric in LOWER_IS_BETTER else 1.0
    return abs(mean - best) <= PERFECT and spread <= PERFECT


@dataclass(frozen=True)
class Unseen:
    """Both models' scores on the test rows neither trained on (the incumbent was evaluated on another split)."""

    rows: int
    newcomer: float
    incumbent: float


def decide(newcomer: Scored, incumbent: Scored | None, metric: str, tolerance: float, floor: float | None = None,
           rolled_back: bool = False, comparable: bool = True, unseen: Unseen | None = None,
           no_comparison: str = "") -> Decision:
    """The gate: promote the newcomer if it meets the floor (its test score, in `metric`, whichever direction is
    better for it) and is not worse than the incumbent by more than `tolerance`, unless it is the incumbent or was
    rolled back. `comparable` False: the incumbent was evaluated on another test split, so the comparison is made
    on `unseen` (the rows neither model trained on); without it (`no_comparison` says why) the incumbent is kept."""
    if tolerance < 0:
        raise ValueError(f"promotion tolerance must be >= 0, got {tolerance}")
    if incumbent is not None and newcomer.md5 == incumbent.md5:
        return Decision(KEEP, f"the newcomer {newcomer.candidate} is the champion already (same model md5)")
    if floor is not None and below_floor(newcomer.test, floor, metric):
        verdict = KEEP if incumbent is not None else REFUSED
        return Decision(verdict, f"the newcomer {newcomer.candidate} scores test {metric} {newcomer.test:.4f}, "
                                 f"below the floor {floor:g}" + ("" if incumbent is not None else
                                                                 ": no champion yet, nothing fit to serve"))
    if incumbent is None:
        met = f" (test {metric} {newcomer.test:.4f}, floor {floor:g})" if floor is not None else ""
        return Decision(PROMOTE, f"no model holds the champion alias yet{met}")
    if rolled_back:
        return Decision(KEEP, f"the newcomer {newcomer.candidate} was rolled back once and is never promoted "
                              "again automatically")
    where, new_score, old_score = "test", newcomer.test, incumbent.test
    if not comparable:
        if unseen is None:
            return Decision(KEEP, f"the champion {incumbent.candidate} was evaluated on another test split and "
                                  f"no fair comparison exists: {no_comparison}")
        where = f"on the {unseen.rows} test rows neither trained on,"
        new_score, old_score = unseen.newcomer, unseen.incumbent
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    margin = round(sign * (new_score - old_score), 12)  # > 0: the newcomer is better
    scores = f"{where} {metric} {new_score:.4f} (newcomer {newcomer.candidate}) vs {old_score:.4f} " \
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


class Refusal(Exception):
    """The gate refuses to serve anything: the reason, also written to the gate's record."""


def unseen_rows(task: str, registry: Registry, held: Any, X_test: Any, y_test: Any) -> tuple[Any, Any, str]:
    """Today's test rows the incumbent did not train on (its run's training split, found in DVC's cache by its
    MLflow digest), features and target; or (None, None, why not)."""
    import pandas as pd

    digest = registry.trained_on(held)
    cached = dvc_cached_file(digest) if digest else None
    if cached is None:
        return None, None, (f"its training split (md5 {digest or 'not recorded'}) is not in DVC's cache "
                            "(`dvc pull` it, or release the newcomer by hand)")
    trained = set(pd.util.hash_pandas_object(pd.read_csv(cached), index=False))
    test = pd.concat([X_test, y_test], axis=1)
    fresh = ~pd.util.hash_pandas_object(test, index=False).isin(trained).to_numpy()
    return X_test[fresh], y_test[fresh], f"only {int(fresh.sum())} of today's test rows are not in its training split"


def promote(task: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the gate against the registry (read only) and write every output; Refusal when nothing may be served."""
    from domain.schema import SCHEMAS, Kind
    from stages.models import load_model
    from stages.rawdata import read_split
    from stages.released import check_present
    from stages.scoring import score

    gate = params[task]["promotion"]
    metric, tolerance = params[task]["champion"]["metric"], float(gate["tolerance"])
    floor, min_unseen = float(gate["floor"]), int(gate.get("min_unseen_rows", 20))
    info = read_json(champion_info(task))
    newcomer_file = champion_model(task)
    newcomer = Scored(info["candidate"], md5sum(newcomer_file), float(info["test"][metric]))
    as_newcomer = Served(newcomer, newcomer_file, info["test"], info["cv"], info["raw_data_md5"])
    if SCHEMAS[task].kind is Kind.REGRESSION and perfect_cv(info["cv"], metric):
        cv = info["cv"][metric]
        raise Refusal(f"the newcomer {newcomer.candidate} scores a perfect CV {metric} {cv['mean']:.4f} ± "
                      f"{cv['std']:.4f}: suspicious (a constant or leaked target?); check the raw data")
    registry = Registry(task)

    X_test, y_test = read_split(task, "test")
    held = registry.version(CHAMPION)
    check_present(task, registry.uri, held is not None)
    incumbent, incumbent_served, unseen, why_not = None, None, None, ""
    comparable = held is None or registry.evaluated_on(held) == md5sum(split_file(task, "test"))
    if held is not None:
        identity = registry.identity(held)
        file = local_file(task, identity.md5)
        model = load_model(file) if file is not None else registry.load(held)
        scores = score(task, y_test.to_numpy(), model.predict(X_test))
        incumbent = Scored(identity.candidate, identity.md5, float(scores[metric]))
        incumbent_served = Served(incumbent, file, scores, None, registry.raw_data_md5(held), model)
        if not comparable and identity.md5 != newcomer.md5:
            X_fresh, y_fresh, why_not = unseen_rows(task, registry, held, X_test, y_test)
            if X_fresh is not None and len(X_fresh) >= min_unseen:
                truth = y_fresh.to_numpy()
                newcomer_model = load_model(newcomer_file)
                unseen = Unseen(len(X_fresh), float(score(task, truth, newcomer_model.predict(X_fresh))[metric]),
                                float(score(task, truth, model.predict(X_fresh))[metric]))
            elif X_fresh is not None:
                why_not += f", fewer than {task}.promotion.min_unseen_rows ({min_unseen})"
    decision = decide(newcomer, incumbent, metric, tolerance, floor,
                      rolled_back=incumbent is not None and registry.rolled_back(newcomer.md5),
                      comparable=comparable, unseen=unseen, no_comparison=why_not)
    if decision.verdict == REFUSED:
        raise Refusal(decision.reason)
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

    write_outputs(task, metric, tolerance, floor, decision, newcomer.record(), incumbent_record, served)
    runs = {role: registry.run_of(Identity(entry.scored.candidate, entry.scored.md5))
            for role, entry in served.items()}
    tracked = read_json(mlflow_info(task)) if mlflow_info(task).is_file() else {}
    for role, run in runs.items():
        tracked[f"{role}_run_id"] = run[0] if run else None
    write_json(mlflow_info(task), tracked)  # not an output: run ids differ on every machine
    return {"decision": decision, "served": served, "unchanged": unchanged, "held": held}


def write_outputs(task: str, metric: str, tolerance: float, floor: float, decision: Decision,
                  newcomer: dict[str, Any], incumbent: dict[str, Any] | None, served: dict[str, Served]) -> None:
    """models/<task>/served/ and metrics/promotion/<task>.json, each all-or-nothing, deterministic."""
    from stages.models import dump_model

    with atomic_dir(served_dir(task)) as out:
        for role, entry in served.items():
            if entry.file is not None:
                shutil.copyfile(entry.file, out / f"{role}.joblib")
            else:  # the model's bytes are nowhere on this machine: the model as the registry gave it
                dump_model(entry.model, out / f"{role}.joblib")
        write_json(out / "served.json", {
            "task": task, "metric": metric,  # no verdict: re-running the gate on the same models changes nothing
            # model_md5: the model's identity, the md5 of the file its MLflow run logged (the served file's own,
            # unless only the registry had the model)
            **{role: {"candidate": entry.scored.candidate, "model_md5": entry.scored.md5,
                      "raw_data_md5": entry.raw_data_md5, "test": entry.test, "cv": entry.cv}
               for role, entry in served.items()}})
    write_json(promotion_file(task), {
        "task": task, "metric": metric, "tolerance": tolerance, "floor": floor, "verdict": decision.verdict,
        "reason": decision.reason, "newcomer": newcomer, "incumbent": incumbent,
        "champion": served[CHAMPION].scored.record(), "challenger": served[CHALLENGER].scored.record()})


def write_refusal(task: str, params: dict[str, Any], reason: str) -> None:
    """The gate's record of a refusal: the verdict, the reason and the newcomer; nothing is served."""
    info = read_json(champion_info(task)) if champion_info(task).is_file() else {}
    metric = params[task]["champion"]["metric"]
    newcomer = ({"candidate": info["candidate"], "model_md5": md5sum(champion_model(task)),
                 "test": round(float(info["test"][metric]), DIGITS)} if info else None)
    write_json(promotion_file(task), {
        "task": task, "metric": metric, "tolerance": float(params[task]["promotion"]["tolerance"]),
        "floor": float(params[task]["promotion"]["floor"]), "verdict": REFUSED, "reason": reason,
        "newcomer": newcomer, "incumbent": None, "champion": None, "challenger": None})


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
    from stages.released import Vanished

    params = load_params()
    try:
        print(summary_line(args.task, promote(args.task, params)))
    except (Refusal, Vanished) as exc:
        write_refusal(args.task, params, str(exc))
        sys.exit(f"promote {args.task}: refused, nothing served: {exc} (recorded in {promotion_file(args.task)})")


if __name__ == "__main__":
    main()
