"""params.yaml as typed models: the whole file is checked before any stage uses a value of it.

A typo (`cv.fold`), an unknown key or a value out of range would otherwise surface as a traceback in whichever
stage reads it, after the stages before it ran. Every model refuses unknown keys; the tasks' blocks and the
candidates are checked against `tasks`. The first problems are reported in one line naming params.yaml, the key
path, the value and what is allowed (`ParamsError`). Stage `check-params` (dvc.yaml, upstream of every other
stage) runs this module, so `dvc repro` and `dvc exp run -S ...` stop before any stage deletes an output; every
stage also validates when it reads params.yaml (stages/config.py), for `dvc repro -s`.

    python -m stages.params_schema             # stage `check-params`: check, write data/valid-params.json
    python -m stages.params_schema --check     # `make check-params`: check only
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ESTIMATOR_NAMES = (  # stages/candidates.py ESTIMATORS (tests/unit/test_params_schema.py keeps them equal)
    "linear_regression", "ridge", "decision_tree_regressor", "random_forest_regressor",
    "hist_gradient_boosting_regressor", "logistic_regression", "linear_discriminant_analysis",
    "decision_tree_classifier", "random_forest_classifier", "gradient_boosting_classifier",
    "hist_gradient_boosting_classifier",
)
CHECKED = Path("data") / "valid-params.json"  # stage `check-params`'s output: the same bytes while valid
SHOWN_PROBLEMS = 3


class ParamsError(ValueError):
    """params.yaml is not valid; the message is one line naming the file, the key path and the value."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


Share = Field(ge=0.0, le=1.0)


class Split(Strict):
    test_size: float = Field(gt=0.0, lt=1.0)
    seed: int = Field(ge=0)


class CV(Strict):
    folds: int = Field(ge=2)
    seed: int = Field(ge=0)
    n_jobs: int = Field(default=1, ge=-1)


class Champion(Strict):
    metric: Literal["r2", "rmse", "mae", "accuracy", "f1_macro"]
    max_splits_per_row: int | None = Field(default=None, gt=0)


class Promotion(Strict):
    tolerance: float = Field(ge=0.0)
    floor: float  # the worst test score (champion metric) a model may have and be served
    min_unseen_rows: int = Field(default=20, ge=1)  # test rows neither model trained on, to compare across splits


class DataChecks(Strict):
    """Checks on the whole raw file (stages/datachecks.py); the defaults fit a few hundred rows or more."""

    min_rows: int = Field(default=100, ge=1)
    max_duplicate_share: float = Field(default=0.05, ge=0.0, le=1.0)
    max_missing_share: float = Field(default=0.1, ge=0.0, le=1.0)
    min_class_count: int = Field(default=10, ge=1)  # classification: each declared class at least this often


class Explain(Strict):
    background_rows: int = Field(ge=1)


class TaskBlock(Strict):
    champion: Champion
    promotion: Promotion
    data: DataChecks  # required: stage preprocess depends on the block (dvc.yaml `${item}.data`)
    features: dict[str, Any] = {}
    explain: Explain


class Search(Strict):
    n_iter: int = Field(ge=0)
    seed: int = Field(ge=0)
    seeds: int = Field(default=1, ge=1)
    space: dict[str, list[Any]] = Field(min_length=1)


class Candidate(Strict):
    task: str
    estimator: Literal[ESTIMATOR_NAMES]  # type: ignore[valid-type]
    scale: bool = False
    seeds: int = Field(default=1, ge=1)
    hyperparams: dict[str, Any] = {}
    search: Search | None = None


class Reference(Strict):
    bins: int = Field(ge=2)
    sample_rows: int = Field(ge=1)
    seed: int = Field(ge=0)


class Live(Strict):
    window: int = Field(ge=1)
    every: int = Field(ge=1)
    threshold: float = Field(gt=0.0)


class Report(Strict):
    method: str
    threshold: float = Field(gt=0.0)
    drift_share: float = Field(gt=0.0, le=1.0)
    min_rows: int = Field(ge=1)
    missing_share: float = Field(ge=0.0, le=1.0)
    sample_rows: int = Field(ge=1)
    sample_seed: int = Field(ge=0)


class Performance(Strict):
    confidence: float = Field(gt=0.0, lt=1.0)
    min_pairs: int = Field(ge=2)
    buckets: int = Field(ge=1)


class Monitoring(Strict):
    reference: Reference
    live: Live
    report: Report
    performance: Performance


class ExplainSettings(Strict):
    importance_rows: int = Field(ge=1)
    seed: int = Field(ge=0)
    max_exact_fields: int = Field(ge=1, le=16)
    samples: int = Field(ge=2)


class Params(Strict):
    """The whole file. Each name in `tasks` has a block of its own at the top level (TaskBlock)."""

    model_config = ConfigDict(extra="allow", frozen=True)  # the task blocks; anything else is refused below

    tasks: list[str] = Field(min_length=1)
    split: Split
    cv: CV
    candidates: dict[str, Candidate] = Field(min_length=1)
    monitoring: Monitoring
    explain: ExplainSettings

    @model_validator(mode="after")
    def task_blocks(self) -> Params:
        extra = self.__pydantic_extra__ or {}
        unknown = sorted(set(extra) - set(self.tasks))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (a typo? it is neither a section of params.yaml nor a task "
                             "`tasks` lists)")
        missing = [task for task in self.tasks if task not in extra]
        if missing:
            raise ValueError(f"{missing[0]}: listed under `tasks` but has no block of its own")
        for name, candidate in self.candidates.items():
            if candidate.task not in self.tasks:
                raise ValueError(f"candidates.{name}.task: {candidate.task!r} is not allowed: it must be a task "
                                 f"`tasks` lists ({', '.join(self.tasks)})")
        return self


def _section(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the section at `loc` below `model` (None where the path leaves the typed models)."""
    import typing

    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return None
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:  # a mapping of names (candidates): the next part is a name
            annotation = typing.get_args(annotation)[1]
            parts = parts[1:]
        else:
            annotation = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _problem(error: Any, prefix: tuple[str, ...], root: type[BaseModel]) -> str:
    """One pydantic error as `key.path: value: what is allowed` (`prefix`: where the validated block sits)."""
    path = ".".join(str(part) for part in (*prefix, *error["loc"]))
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        section = _section(root, tuple(error["loc"][:-1]))
        allowed = f" (allowed: {', '.join(section.model_fields)})" if section is not None else ""
        return f"{path}: unknown key, a typo?{allowed}"
    if kind == "missing":
        return f"{path}: missing (required)"
    if kind == "value_error" and not path:
        return message.removeprefix("Value error, ")
    value = error.get("input")
    return f"{path}: {value!r} is not allowed: {message[0].lower() + message[1:]}"


def validate(document: Any, source: str = "params.yaml") -> Params:
    """The file's content as typed models, or ParamsError: one line, the first problems found."""
    if not isinstance(document, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(document).__name__}")
    problems = []
    try:
        params = Params.model_validate(document)
    except ValidationError as exc:
        params, problems = None, [_problem(error, (), Params) for error in exc.errors()]
    for task in params.tasks if params is not None else ():
        try:
            TaskBlock.model_validate(document[task])
        except ValidationError as exc:
            problems += [_problem(error, (task,), TaskBlock) for error in exc.errors()]
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        text = "; ".join(problems[:SHOWN_PROBLEMS]) + (f" (and {more} more)" if more > 0 else "")
        raise ParamsError(f"{source}: {text}")
    return params


def read(path: Path | str = "params.yaml") -> dict[str, Any]:
    """params.yaml read and validated: the raw mapping (what the stages index), or ParamsError."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    validate(document, str(path))
    return document


def main(argv: list[str] | None = None) -> None:
    """Stage `check-params` (and `make check-params` with --check, which writes nothing): refuse an invalid
    params.yaml in one line; write the constant marker when it is valid."""
    args = sys.argv[1:] if argv is None else argv
    try:
        read()
    except (ParamsError, OSError) as exc:
        sys.exit(f"check-params: {exc}")
    if "--check" not in args:
        from stages.files import write_json

        write_json(CHECKED, {"params.yaml": "valid"})
    print("check-params: params.yaml is valid")


if __name__ == "__main__":
    main()
