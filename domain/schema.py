"""A task's declaration: its raw fields (names, types, ranges), its target, its data source and how it is served.

A task is a file, `tasks/<task>.yaml` (docs/bring-your-own-data.md describes every key), plus its block of
params.yaml (candidates, champion rule, gate); `params.yaml tasks` lists the tasks the pipeline builds. One
source of truth: preprocess validates the raw CSV against these specs and the service builds its request and
answer models from them, so a value the pipeline would reject is rejected at serving time too, with the same
bounds. Code that differs between regression and classification asks `TaskSchema.kind`, never a task's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TASK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # a route segment, a stage key and a Prometheus label value


class DeclarationError(ValueError):
    """A task declaration that cannot be used; the message names the file and the key."""


class Kind(StrEnum):
    REGRESSION = "regression"
    CLASSIFICATION = "classification"


@dataclass(frozen=True)
class NumericField:
    """A float column with inclusive, finite bounds: the plausible range of the quantity, wider than any
    training data, so that a value no real record can have is rejected by preprocess and by the service
    alike. `nullable`: the value may be missing (null or absent); the model imputes it. `column`: the raw
    file's name for it, when that differs."""

    name: str
    description: str
    minimum: float
    maximum: float
    nullable: bool = False
    unit: str = ""
    column: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum) and self.minimum <= self.maximum):
            raise ValueError(f"{self.name}: bounds must be finite with minimum <= maximum, "
                             f"got [{self.minimum}, {self.maximum}]")

    @property
    def source_column(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class CategoryField:
    """One of a fixed set of strings; `required=False`: it may be missing (the model treats it as unknown)."""

    name: str
    description: str
    categories: tuple[str, ...]
    required: bool = True
    column: str = ""

    @property
    def source_column(self) -> str:
        return self.column or self.name


Spec = NumericField | CategoryField


@dataclass(frozen=True)
class TaskSchema:
    """Features a client sends, plus the label column of the raw file, the data source and serving names.

    `model_name` names the champion in the MLflow registry and the BentoML model store (`challenger_name`
    the challenger in the store; in the registry it is a version of `model_name` with the alias `challenger`);
    `answer` is the field of the service's answer that holds the prediction; `prediction_metric` is the
    Prometheus metric of its predictions (a histogram of values for regression with `prediction_buckets`, a
    counter by class for classification); `feature_transformer` ("module:Class") derives the model's features
    from the raw fields, if the task has one. It is named, not imported, so another task's pipeline never
    depends on that code.
    """

    task: str
    kind: Kind
    features: tuple[Spec, ...]
    target: Spec
    model_name: str
    prediction_metric: str
    prediction_buckets: tuple[float, ...] = ()
    feature_transformer: str = ""
    # Pairs (smaller, larger): the first may not exceed the second in the same row.
    not_greater_than: tuple[tuple[str, str], ...] = field(default=())
    source: Mapping[str, str] = field(default_factory=dict)
    answer: str = ""

    @property
    def challenger_name(self) -> str:
        """The BentoML store's name of the served challenger (the model to try next, stage `promote`)."""
        return f"{self.model_name}-challenger"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if isinstance(f, NumericField)]

    @property
    def columns(self) -> list[str]:
        return [*self.feature_names, self.target.name]

    @property
    def renamed_columns(self) -> dict[str, str]:
        """Raw file column -> field name, for the columns the declaration renames."""
        return {spec.column: spec.name for spec in (*self.features, self.target) if spec.column}

    @property
    def classes(self) -> tuple[str, ...]:
        """The labels a classifier predicts; empty for regression."""
        return self.target.categories if isinstance(self.target, CategoryField) else ()


# -- reading declarations -------------------------------------------------------------------------------------
def declaration_file(task: str, root: Path | None = None) -> Path:
    return (root or PROJECT_ROOT) / "tasks" / f"{task}.yaml"


def _text(where: str, value: Any, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise DeclarationError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _number(where: str, value: Any) -> float:
    """A finite number as written (an int stays an int, so messages print 400000, not 400000.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DeclarationError(f"{where}: expected a finite number, got {value!r}")
    return value


def _keys(where: str, block: Any, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise DeclarationError(f"{where}: expected a mapping, got {type(block).__name__}")
    unknown, missing = sorted(set(block) - allowed), sorted(required - set(block))
    if unknown:
        raise DeclarationError(f"{where}: unknown key {unknown[0]!r} (expected: {', '.join(sorted(allowed))})")
    if missing:
        raise DeclarationError(f"{where}: missing key {missing[0]!r}")
    return block


FIELD_KEYS = {"description", "minimum", "maximum", "categories", "unit", "optional", "column"}


def _spec(where: str, name: Any, block: Any) -> Spec:
    name = _text(where, name)
    block = _keys(where, {} if block is None else block, FIELD_KEYS)
    description = _text(f"{where}.description", block.get("description"), default=name)
    column = _text(f"{where}.column", block.get("column"), default="")
    optional = block.get("optional", False)
    if not isinstance(optional, bool):
        raise DeclarationError(f"{where}.optional: expected true or false, got {optional!r}")
    if "categories" in block:
        categories = block["categories"]
        if (not isinstance(categories, list) or len(categories) < 2
                or not all(isinstance(c, str) and c for c in categories) or len(set(categories)) < len(categories)):
            raise DeclarationError(f"{where}.categories: expected a list of two or more distinct strings")
        if {"minimum", "maximum", "unit"} & set(block):
            raise DeclarationError(f"{where}: a category field has no minimum, maximum or unit")
        return CategoryField(name, description, tuple(categories), required=not optional, column=column)
    if "minimum" not in block or "maximum" not in block:
        raise DeclarationError(f"{where}: a numeric field needs minimum and maximum (or categories: [...])")
    minimum, maximum = _number(f"{where}.minimum", block["minimum"]), _number(f"{where}.maximum", block["maximum"])
    if minimum > maximum:
        raise DeclarationError(f"{where}: minimum {minimum:g} exceeds maximum {maximum:g}")
    return NumericField(name, description, minimum, maximum, nullable=optional,
                        unit=_text(f"{where}.unit", block.get("unit"), default=""), column=column)


def _source(where: str, block: Any) -> dict[str, str]:
    block = _keys(where, block, {"url", "path", "sklearn_dataset", "md5"}, {"md5"})
    origins = sorted({"url", "path", "sklearn_dataset"} & set(block))
    if len(origins) != 1:
        raise DeclarationError(f"{where}: give exactly one of url, path or sklearn_dataset")
    if not re.fullmatch(r"[0-9a-f]{32}", str(block["md5"])):
        raise DeclarationError(f"{where}.md5: expected 32 hexadecimal digits, got {block['md5']!r}")
    return {key: _text(f"{where}.{key}", value) for key, value in block.items()}


def parse_declaration(task: str, document: Any, where: str) -> TaskSchema:
    """The TaskSchema a declaration's YAML document describes; DeclarationError names the offending key."""
    if not TASK_NAME.match(task):
        raise DeclarationError(f"{where}: task name {task!r} must be lowercase letters, digits and underscores, "
                               "starting with a letter")
    doc = _keys(where, document, {"kind", "source", "fields", "target", "not_greater_than", "serving",
                                  "feature_transformer"}, {"kind", "source", "fields", "target"})
    try:
        kind = Kind(doc["kind"])
    except ValueError:
        raise DeclarationError(f"{where}: kind: expected regression or classification, got {doc['kind']!r}") from None
    fields = doc["fields"]
    if not isinstance(fields, dict) or not fields:
        raise DeclarationError(f"{where}: fields: expected a mapping of field name to its spec")
    features = tuple(_spec(f"{where}: fields.{name}", name, block) for name, block in fields.items())
    target_block = dict(_keys(f"{where}: target", doc["target"], FIELD_KEYS | {"name"}, {"name"}))
    target = _spec(f"{where}: target", target_block.pop("name"), target_block)
    if (kind is Kind.CLASSIFICATION) != isinstance(target, CategoryField):
        raise DeclarationError(f"{where}: target: a {kind} task needs a "
                               f"{'category' if kind is Kind.CLASSIFICATION else 'numeric'} target")
    names = [spec.name for spec in (*features, target)]
    if len(set(names)) < len(names):
        raise DeclarationError(f"{where}: the target {target.name!r} is also a field")
    pairs = doc.get("not_greater_than") or []
    numeric = {spec.name for spec in features if isinstance(spec, NumericField)}
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and set(pair) <= numeric):
            raise DeclarationError(f"{where}: not_greater_than: {pair!r} is not a pair of numeric fields")
    serving = _keys(f"{where}: serving", doc.get("serving") or {}, {"model_name", "answer", "metric", "buckets"})
    default_metric = (f"{task}_prediction_value" if kind is Kind.REGRESSION else f"{task}_predicted_{target.name}")
    buckets = serving.get("buckets") or _default_buckets(target)
    return TaskSchema(
        task=task, kind=kind, features=features, target=target,
        model_name=_text(f"{where}: serving.model_name", serving.get("model_name"),
                         default=f"{task}-{'regressor' if kind is Kind.REGRESSION else 'classifier'}"),
        prediction_metric=_text(f"{where}: serving.metric", serving.get("metric"), default=default_metric),
        prediction_buckets=tuple(_number(f"{where}: serving.buckets", b) for b in buckets)
        if kind is Kind.REGRESSION else (),
        feature_transformer=_text(f"{where}: feature_transformer", doc.get("feature_transformer"), default=""),
        not_greater_than=tuple((a, b) for a, b in pairs),
        source=_source(f"{where}: source", doc["source"]),
        answer=_answer(f"{where}: serving.answer", serving.get("answer"), target.name),
    )


RESERVED_ANSWERS = {"model", "arm", "request_id", "probabilities", "predictions"}  # other fields of an answer


def _answer(where: str, value: Any, target: str) -> str:
    """The answer's field holding the prediction: as declared, else the target's name when that is a plain
    identifier, else "prediction"."""
    if value is None:
        return target if target.isidentifier() and target not in RESERVED_ANSWERS else "prediction"
    answer = _text(where, value)
    if not answer.isidentifier() or answer in RESERVED_ANSWERS:
        raise DeclarationError(f"{where}: {answer!r} must be an identifier other than "
                               f"{', '.join(sorted(RESERVED_ANSWERS))}")
    return answer


def _default_buckets(target: Spec) -> list[float]:
    """Ten equal-width buckets over the target's declared range (a classifier needs none)."""
    if not isinstance(target, NumericField):
        return []
    step = (target.maximum - target.minimum) / 10
    return [target.minimum + step * k for k in range(1, 10)] if step > 0 else [target.maximum]


@cache
def load_schema(task: str, root: Path | None = None) -> TaskSchema:
    """The task's declaration (tasks/<task>.yaml under `root`, the project by default)."""
    path = declaration_file(task, root)
    if not TASK_NAME.match(task) or not path.is_file():
        raise DeclarationError(f"unknown task {task!r}: no declaration {path.relative_to(path.parents[1])}")
    with open(path, encoding="utf-8") as fh:
        try:
            document = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise DeclarationError(f"{path.name}: not valid YAML: {exc}") from None
    return parse_declaration(task, document, f"tasks/{path.name}")


def task_names(root: Path | None = None) -> tuple[str, ...]:
    """The tasks the pipeline builds: params.yaml `tasks`, in its order."""
    with open((root or PROJECT_ROOT) / "params.yaml", encoding="utf-8") as fh:
        tasks = (yaml.safe_load(fh) or {}).get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, str) and TASK_NAME.match(t) for t in tasks):
        raise DeclarationError("params.yaml tasks: expected a list of task names (each with tasks/<task>.yaml)")
    return tuple(tasks)


class Declarations(Mapping[str, TaskSchema]):
    """Task name -> its schema, each declaration read when first asked for (so a stage reads only its own task's),
    over the tasks params.yaml lists."""

    def __getitem__(self, task: str) -> TaskSchema:
        try:
            return load_schema(task)
        except DeclarationError as exc:
            raise KeyError(str(exc)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(task_names())

    def __len__(self) -> int:
        return len(task_names())


SCHEMAS: Mapping[str, TaskSchema] = Declarations()
