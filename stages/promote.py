"""Stage `promote@<task>`: the promotion gate between `evaluate`'s choice and the served champion.

The newcomer is the champion `evaluate` chose by the CV rule (models/<task>/champion.joblib). The incumbent is
the model version that holds the MLflow registry's `champion` alias for the task (`SCHEMAS[task].model_name`),
loaded from the registry. Both are scored on the same held-out test split, in the task's champion metric
(`<task>.champion.metric`), if the incumbent's run was evaluated on that very split (its MLflow dataset digest):
else it may have trained on today's test rows. The decision (`decide`, a pure function):
- "first": no version holds the alias (an empty registry, a fresh clone): the newcomer is promoted;
- "promoted": the newcomer is not worse than the incumbent by more than `<task>.promotion.tolerance`, or the
  incumbent was evaluated on another split (new raw data, other split params): no fair comparison exists;
- "kept": it is worse by more than that, or it is a model that was rolled back (`make rollback`,
  stages/rollback.py: never promoted again automatically). The incumbent stays, the stage still succeeds and prints
  one line saying why.
When the newcomer is the incumbent itself (same model md5: the gate re-checks because a candidate changed or a
param was reverted), the decision is the one that promoted it, recorded on its version (PROMOTION_RECORD), so the
outputs are byte for byte those of that run (a version promoted before the record existed: "kept", same md5).
Promoting moves `champion` to the newcomer's version and `previous-champion` to the incumbent's (the version
`make rollback` restores). The `challenger` alias marks the model to try next: the rejected newcomer when kept,
else the runner-up candidate by the champion rule (registered as a version of the same registered model).
Versions and the newcomer's run carry the tags `promotion` (the decision) and `promotion_reason`.

Outputs:
- models/<task>/served/: champion.joblib and challenger.joblib (what `profile`, `compile`, `explain` and
  `package` read) and served.json (which candidate each is, their md5s and test scores);
- metrics/promotion/<task>.json (git-tracked): the decision, both models' candidate, md5 and test score, the
  tolerance and the reason; no run ids or times, so the same registry state gives the same bytes;
- models/<task>/mlflow.json (not an output, git-ignored): the served models' run ids and registry versions.

Reproducibility: the outputs depend on the registry's state, which DVC does not see. DVC skips `promote` when its
deps are unchanged, and restores it from the run-cache when they match an earlier run, so after the registry
changed (another machine promoted, `make rollback`) re-check it with `dvc repro -f -s promote@<task>` (then
`dvc repro` for the stages downstream). A fresh clone with an empty `mlflow.db` gets "first" everywhere, which is
what the committed dvc.lock and metrics/promotion/ record.

    python -m stages.promote housing
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.schema import SCHEMAS, TASKS
from stages.champion import choose_champion
from stages.config import (
    candidate_dir,
    champion_info,
    champion_model,
    load_params,
    mlflow_info,
    promotion_file,
    served_dir,
    split_file,
)
from stages.files import atomic_dir, md5sum, read_json, write_json
from stages.lifetime import start_stage
from stages.scoring import LOWER_IS_BETTER

DECISIONS = ("first", "promoted", "kept")
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
ROLLED_BACK = "rolled_back"  # version tag `make rollback` sets: the gate never promotes that model again by itself
# version tag: the decision, reason and incumbent of the version's promotion. The gate re-checking an unchanged
# champion (a candidate changed, a param reverted) writes that record again, so metrics/promotion/ and served/
# stay byte-identical and DVC's run-cache can restore the stage after a revert.
PROMOTION_RECORD = "promotion_record"
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
    decision: str  # one of DECISIONS
    reason: str

    @property
    def promotes(self) -> bool:
        return self.decision != "kept"


def decide(newcomer: Scored, incumbent: Scored | None, metric: str, tolerance: float,
           rolled_back: bool = False, comparable: bool = True) -> Decision:
    """The gate: promote the newcomer unless it is worse than the incumbent by more than `tolerance` (in `metric`,
    whichever direction is better for it), is the incumbent, or was rolled back. `comparable` False: the incumbent
    was evaluated on another test split (new raw data, another split seed or size), so some of today's test rows
    may be rows it trained on and its score would flatter it: the newcomer, chosen by CV, is promoted."""
    if tolerance < 0:
        raise ValueError(f"promotion tolerance must be >= 0, got {tolerance}")
    if incumbent is None:
        return Decision("first", "no model holds the champion alias yet")
    if newcomer.md5 == incumbent.md5:
        return Decision("kept", f"the newcomer {newcomer.candidate} is the champion already (same model md5)")
    if rolled_back:
        return Decision("kept", f"the newcomer {newcomer.candidate} was rolled back once and is never promoted "
                                "again automatically")
    if not comparable:
        return Decision("promoted", f"the champion {incumbent.candidate} was evaluated on another test split: its "
                                    f"score on this one is not comparable (it may have trained on these rows)")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    margin = round(sign * (newcomer.test - incumbent.test), 12)  # > 0: the newcomer is better
    scores = f"test {metric} {newcomer.test:.4f} (newcomer {newcomer.candidate}) vs {incumbent.test:.4f} " \
             f"(champion {incumbent.candidate})"
    if margin >= -tolerance:
        verdict = "better" if margin > 0 else "not worse" if margin == 0 else "worse, within the tolerance"
        return Decision("promoted", f"{scores}: {verdict} (tolerance {tolerance:g})")
    return Decision("kept", f"{scores}: worse by {-margin:.4f}, more than the tolerance {tolerance:g}")


def runner_up(task: str, params: dict[str, Any], exclude: str) -> str | None:
    """The best candidate by the champion rule once `exclude` is out (None when it is the only one)."""
    rule = params[task]["champion"]
    summaries = {name: read_json(candidate_dir(task, name) / "summary.json")
                 for name in params[task]["candidates"] if name != exclude}
    return choose_champion(summaries, rule["metric"], rule.get("max_splits_per_row")) if summaries else None


def local_file(task: str, md5: str) -> Path | None:
    """A trained candidate's model file with this md5, if one is in the work tree (byte-identical to what was
    logged, so the served file does not depend on MLflow's serialisation)."""
    for path in sorted((Path("models") / task / "candidates").glob("*/model.joblib")):
        if md5sum(path) == md5:
            return path
    return None


class Registry:
    """The task's registered model: what the gate reads and moves (mlflow imported lazily, ~1 s)."""

    def __init__(self, task: str) -> None:
        from mlflow.tracking import MlflowClient

        from stages import tracking

        tracking.configure()
        self.task, self.name, self.tracking = task, SCHEMAS[task].model_name, tracking
        self.client = MlflowClient()
        self.experiment = tracking.experiment_id(task)

    def run_of(self, candidate: str, md5: str) -> tuple[str, str]:
        found = self.tracking.find_candidate_run(self.experiment, candidate, md5)
        if found is None:
            sys.exit(f"promote {self.task}: MLflow {self.tracking.tracking_uri()} has no run of {candidate} "
                     f"(model md5 {md5}); run `dvc repro -f -s evaluate@{self.task}` first")
        return found

    def register(self, candidate: str, md5: str) -> tuple[str, str, str]:
        """(version, run id, model URI) of the candidate's model, registered now unless it already is."""
        run_id, uri = self.run_of(candidate, md5)
        version = self.tracking.register_version(self.name, run_id, uri)
        for key, value in (("candidate", candidate), ("model_md5", md5)):
            self.client.set_model_version_tag(self.name, version, key, value)
        return version, run_id, uri

    def version(self, alias: str) -> Any | None:
        return self.tracking.alias_version(self.name, alias)

    def identity(self, version: Any) -> tuple[str, str]:
        """(candidate, model md5) of a version, from the tags of the run that logged it."""
        tags = self.client.get_run(version.run_id).data.tags
        return tags.get("candidate", "unknown"), tags.get("model_md5", "unknown")

    def rolled_back(self, md5: str) -> bool:
        return any(v.tags.get(ROLLED_BACK) == "true" and self.identity(v)[1] == md5
                   for v in self.tracking.all_versions(self.name))

    def raw_data_md5(self, version: Any) -> str:
        """The raw data the version was trained from (its run's tag)."""
        return self.client.get_run(version.run_id).data.tags.get("raw_data_md5", "unknown")

    def evaluated_on(self, version: Any) -> str | None:
        """The md5 of the test split the version's run was evaluated on (its MLflow dataset input), if recorded."""
        for dataset_input in self.client.get_run(version.run_id).inputs.dataset_inputs:
            contexts = {tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"}
            if "evaluation" in contexts:
                return dataset_input.dataset.digest
        return None

    def load(self, version: str) -> Any:
        import mlflow

        return mlflow.sklearn.load_model(f"models:/{self.name}/{version}")

    def alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def record_promotion(self, version: str, decision: Decision, incumbent: dict[str, Any] | None) -> None:
        """Remember why the version was promoted (tag PROMOTION_RECORD), for a later re-check of it."""
        record = {"decision": decision.decision, "reason": decision.reason, "incumbent": incumbent}
        self.client.set_model_version_tag(self.name, version, PROMOTION_RECORD, json.dumps(record, sort_keys=True))

    def promotion_record(self, version: Any) -> dict[str, Any] | None:
        """How the version came to hold the alias, if the gate recorded it."""
        text = version.tags.get(PROMOTION_RECORD)
        return json.loads(text) if text else None

    def tag(self, version: str, run_id: str, decision: Decision) -> None:
        for key, value in (("promotion", decision.decision), ("promotion_reason", decision.reason)):
            self.client.set_model_version_tag(self.name, version, key, value)
            self.client.set_tag(run_id, key, value)


def promote(task: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the gate against the registry, move the aliases and write every output."""
    from stages.models import load_model
    from stages.rawdata import read_split
    from stages.scoring import score

    metric, tolerance = params[task]["champion"]["metric"], float(params[task]["promotion"]["tolerance"])
    info = read_json(champion_info(task))
    newcomer_file = champion_model(task)
    newcomer = Scored(info["candidate"], md5sum(newcomer_file), float(info["test"][metric]))
    registry = Registry(task)

    X_test, y_test = read_split(task, "test")
    held = registry.version(CHAMPION)
    incumbent, incumbent_model, incumbent_scores = None, None, None
    if held is not None:
        candidate, md5 = registry.identity(held)
        incumbent_model = registry.load(held.version)
        incumbent_scores = score(task, y_test.to_numpy(), incumbent_model.predict(X_test))
        incumbent = Scored(candidate, md5, float(incumbent_scores[metric]))
    decision = decide(newcomer, incumbent, metric, tolerance,
                      rolled_back=incumbent is not None and registry.rolled_back(newcomer.md5),
                      comparable=held is None or registry.evaluated_on(held) == md5sum(split_file(task, "test")))
    incumbent_record = incumbent.record() if incumbent is not None else None
    recorded = registry.promotion_record(held) if incumbent is not None and newcomer.md5 == incumbent.md5 else None
    if recorded is not None:  # the champion re-checked, unchanged: it holds the alias by its own promotion
        decision, incumbent_record = Decision(recorded["decision"], recorded["reason"]), recorded["incumbent"]

    new_version, new_run, new_uri = registry.register(newcomer.candidate, newcomer.md5)
    if recorded is None:
        registry.tag(new_version, new_run, decision)
    if decision.promotes and recorded is None:
        registry.record_promotion(new_version, decision, incumbent_record)
    served: dict[str, dict[str, Any]] = {}
    if decision.promotes:
        if held is not None and held.version != new_version:
            registry.alias(PREVIOUS, held.version)
            registry.client.set_model_version_tag(registry.name, new_version, "previous_champion", held.version)
        registry.alias(CHAMPION, new_version)
        served[CHAMPION] = {"scored": newcomer, "file": newcomer_file, "test": info["test"], "cv": info["cv"],
                            "version": new_version, "run_id": new_run, "model_uri": new_uri,
                            "raw_data_md5": info["raw_data_md5"]}
    elif newcomer.md5 == incumbent.md5:  # the gate re-checked an unchanged champion: serve exactly what evaluate saw
        served[CHAMPION] = {"scored": newcomer, "file": newcomer_file, "test": info["test"], "cv": info["cv"],
                            "version": held.version, "run_id": held.run_id, "model_uri": held.source,
                            "raw_data_md5": info["raw_data_md5"]}
    else:
        served[CHAMPION] = {"scored": incumbent, "file": local_file(task, incumbent.md5), "model": incumbent_model,
                            "test": incumbent_scores, "cv": None, "version": held.version, "run_id": held.run_id,
                            "model_uri": held.source, "raw_data_md5": registry.raw_data_md5(held)}
    if not decision.promotes and newcomer.md5 != incumbent.md5:
        challenger = {"scored": newcomer, "file": newcomer_file, "test": info["test"], "cv": info["cv"],
                      "version": new_version, "run_id": new_run, "model_uri": new_uri,
                      "raw_data_md5": info["raw_data_md5"]}
    else:
        name = runner_up(task, params, exclude=newcomer.candidate)
        if name is None:
            sys.exit(f"promote {task}: no runner-up to make the challenger: {task}.candidates has one candidate")
        summary = read_json(candidate_dir(task, name) / "summary.json")
        path = candidate_dir(task, name) / "model.joblib"
        test = score(task, y_test.to_numpy(), load_model(path).predict(X_test))
        version, run_id, uri = registry.register(name, md5sum(path))
        challenger = {"scored": Scored(name, md5sum(path), float(test[metric])), "file": path, "test": test,
                      "cv": summary["cv"], "version": version, "run_id": run_id, "model_uri": uri,
                      "raw_data_md5": info["raw_data_md5"]}  # trained by this pipeline run, as the newcomer
    served[CHALLENGER] = challenger
    registry.alias(CHALLENGER, challenger["version"])
    for role in served.values():  # a candidate file with the same bytes gives the scores CV gave it
        if role["cv"] is None and role["file"] is not None:
            role["cv"] = read_json(role["file"].parent / "summary.json")["cv"]

    write_outputs(task, metric, tolerance, decision, newcomer.record(), incumbent_record, served)
    tracked = read_json(mlflow_info(task)) if mlflow_info(task).is_file() else {}
    for prefix, role in ((CHAMPION, served[CHAMPION]), (CHALLENGER, served[CHALLENGER])):
        tracked.update({f"{prefix}_run_id": role["run_id"], f"{prefix}_model_uri": role["model_uri"],
                        f"{prefix}_model_version": role["version"]})
    tracked.update({"tracking_uri": registry.tracking.tracking_uri(), "registered_model": registry.name,
                    "model_version": served[CHAMPION]["version"], "decision": decision.decision})
    write_json(mlflow_info(task), tracked)  # not an output: what MLflow assigned differs every run
    return {"decision": decision, "served": served}


def write_outputs(task: str, metric: str, tolerance: float, decision: Decision, newcomer: dict[str, Any],
                  incumbent: dict[str, Any] | None, served: dict[str, dict[str, Any]]) -> None:
    """models/<task>/served/ and metrics/promotion/<task>.json, each all-or-nothing, deterministic."""
    import joblib

    with atomic_dir(served_dir(task)) as out:
        for role, entry in served.items():
            if entry["file"] is not None:
                shutil.copyfile(entry["file"], out / f"{role}.joblib")
            else:  # the incumbent's bytes are nowhere in the work tree: the model as the registry gave it
                joblib.dump(entry["model"], out / f"{role}.joblib")
        write_json(out / "served.json", {
            "task": task, "metric": metric,  # no decision: re-running the gate on the same models changes nothing
            **{role: {"candidate": entry["scored"].candidate, "model_md5": md5sum(out / f"{role}.joblib"),
                      "raw_data_md5": entry["raw_data_md5"], "test": entry["test"], "cv": entry["cv"]}
               for role, entry in served.items()}})
    write_json(promotion_file(task), {
        "task": task, "metric": metric, "tolerance": tolerance, "decision": decision.decision,
        "reason": decision.reason, "newcomer": newcomer, "incumbent": incumbent,
        "champion": served[CHAMPION]["scored"].record(), "challenger": served[CHALLENGER]["scored"].record()})


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    args = parser.parse_args(argv)
    result = promote(args.task, load_params())
    decision, served = result["decision"], result["served"]
    champion, challenger = served[CHAMPION], served[CHALLENGER]
    print(f"promote {args.task}: {decision.decision}: {decision.reason}; serving champion "
          f"{champion['scored'].candidate} (version {champion['version']}), challenger "
          f"{challenger['scored'].candidate} (version {challenger['version']})")


if __name__ == "__main__":
    main()
