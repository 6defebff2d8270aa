"""The MLflow model registry of one task: what the gate reads, and what `make release` and `make rollback` move.

One registered model per task (`SCHEMAS[task].model_name`) with three aliases: `champion` (in production),
`challenger` (the model to try next) and `previous-champion` (what `make rollback` restores). A version is
identified by the candidate and the md5 of the model file its MLflow run logged (run tags `candidate`,
`model_md5`), the identity `promote`, `release` and `package` use to find a model again.

Only `stages/release.py` and `stages/rollback.py` write here, and only when a user runs them: the pipeline's
stages read the registry and never move an alias, so a `dvc exp run` changes nothing a server or a teammate sees.
mlflow is imported lazily (about a second).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from domain.schema import SCHEMAS

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)
ROLLED_BACK = "rolled_back"  # version tag `make rollback` sets: the gate never promotes that model again by itself
# version tag: the verdict, reason and incumbent that released the version. The gate re-checking an unchanged
# champion (a candidate changed, a param reverted) writes that record again, so metrics/promotion/ and served/
# stay byte-identical and DVC's run-cache can restore the stage after a revert.
PROMOTION_RECORD = "promotion_record"
PREVIOUS_TAG = "previous_champion"  # version tag: the champion the version replaced when it was released


@dataclass(frozen=True)
class Identity:
    """A model as the registry knows it: the candidate that trained it and its model file's md5."""

    candidate: str
    md5: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> Identity:
        return cls(record["candidate"], record["model_md5"])

    def __str__(self) -> str:
        return f"{self.candidate} (model md5 {self.md5[:8]})"


class Registry:
    """The task's registered model (read by the gate and `package`, written by release and rollback)."""

    def __init__(self, task: str) -> None:
        from mlflow.tracking import MlflowClient

        from stages import tracking

        tracking.configure()
        self.task, self.name, self.tracking = task, SCHEMAS[task].model_name, tracking
        self.client = MlflowClient()

    @property
    def uri(self) -> str:
        return self.tracking.tracking_uri()

    # -- reading ---------------------------------------------------------------------------------------------
    def version(self, alias: str) -> Any | None:
        """The ModelVersion the alias points at, or None."""
        return self.tracking.alias_version(self.name, alias)

    def aliases(self) -> dict[str, str]:
        """Alias -> version number, for every alias of ALIASES that is set."""
        versions = {alias: self.version(alias) for alias in ALIASES}
        return {alias: str(version.version) for alias, version in versions.items() if version is not None}

    def identity(self, version: Any) -> Identity:
        """Which model a version is, from the tags of the run that logged it."""
        tags = self.client.get_run(version.run_id).data.tags
        return Identity(tags.get("candidate", "unknown"), tags.get("model_md5", "unknown"))

    def run_of(self, model: Identity) -> tuple[str, str] | None:
        """(run id, model URI) of the MLflow run that logged this model, if this store has one."""
        experiment = self.client.get_experiment_by_name(self.task)
        if experiment is None:
            return None
        return self.tracking.find_candidate_run(experiment.experiment_id, model.candidate, model.md5)

    def registered(self, model: Identity) -> str | None:
        """The version number the model is registered under, if it is."""
        run = self.run_of(model)
        if run is None or not self.tracking.all_versions(self.name):
            return None
        versions = self.client.search_model_versions(f"name = '{self.name}' and run_id = '{run[0]}'")
        return str(min(int(v.version) for v in versions)) if versions else None

    def rolled_back(self, md5: str) -> bool:
        return any(v.tags.get(ROLLED_BACK) == "true" and self.identity(v).md5 == md5
                   for v in self.tracking.all_versions(self.name))

    def raw_data_md5(self, version: Any) -> str:
        """The raw data the version was trained from (its run's tag)."""
        return self.client.get_run(version.run_id).data.tags.get("raw_data_md5", "unknown")

    def evaluated_on(self, version: Any) -> str | None:
        """The md5 of the test split the version's run was evaluated on (its MLflow dataset input), if recorded."""
        return self._dataset(version, "evaluation")

    def trained_on(self, version: Any) -> str | None:
        """The md5 of the training split the version's run was trained on, if recorded."""
        return self._dataset(version, "training")

    def _dataset(self, version: Any, context: str) -> str | None:
        for dataset_input in self.client.get_run(version.run_id).inputs.dataset_inputs:
            contexts = {tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"}
            if context in contexts:
                return dataset_input.dataset.digest
        return None

    def load(self, version: Any) -> Any:
        import mlflow

        return mlflow.sklearn.load_model(f"models:/{self.name}/{version.version}")

    @staticmethod
    def promotion_record(version: Any) -> dict[str, Any] | None:
        """The verdict that released the version, if `make release` recorded it."""
        text = version.tags.get(PROMOTION_RECORD)
        return json.loads(text) if text else None

    # -- writing (release and rollback only) -----------------------------------------------------------------
    def register(self, model: Identity) -> str:
        """The model's version, registered now unless it already is. Exits naming the fix if no run logged it."""
        run = self.run_of(model)
        if run is None:
            sys.exit(f"{self.task}: MLflow {self.uri} has no run of {model}; log it with "
                     f"`dvc repro -f -s evaluate@{self.task}`")
        version = self.tracking.register_version(self.name, *run)
        for key, value in (("candidate", model.candidate), ("model_md5", model.md5)):
            self.client.set_model_version_tag(self.name, version, key, value)
        return version

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def drop_alias(self, alias: str) -> None:
        self.client.delete_registered_model_alias(self.name, alias)

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version, key, value)

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)

    def describe(self) -> str:
        """`champion 3 (hgb), challenger 2 (forest), previous-champion 1 (hgb)`: what each alias holds now."""
        held = []
        for alias in ALIASES:
            version = self.version(alias)
            held.append(f"{alias} " + ("none" if version is None
                                       else f"{version.version} ({self.identity(version).candidate})"))
        return ", ".join(held)
