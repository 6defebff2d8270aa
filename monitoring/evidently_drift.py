"""Feature and prediction drift of a log window against the reference sample, computed by Evidently.

Why Evidently rather than our own statistics: its drift tests (PSI, Wasserstein, Jensen-Shannon,
K-S, ...) are maintained, documented and widely used, their binning and edge cases (empty bins,
few unique values, missing values) are handled once, and it renders the per-feature
reference-vs-current distributions as a self-contained HTML page (its JavaScript and font are
embedded, so the report opens offline). We only choose the test and the thresholds (params.yaml
`monitoring.report`) and read its verdicts.

Part of `make monitor`; Evidently is a development/pipeline dependency, never in the serving image.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from domain.drift import prediction_value

PREDICTION = "prediction"


@dataclass(frozen=True)
class DriftSettings:
    """params.yaml `monitoring.report`."""

    method: str
    threshold: float
    drift_share: float
    min_rows: int
    missing_share: float  # data quality, monitoring/data_quality.py
    sample_rows: int  # the window's sample judged for drift and data quality (monitoring/sample.py)
    sample_seed: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DriftSettings:
        report = params["monitoring"]["report"]
        settings = cls(str(report["method"]), float(report["threshold"]), float(report["drift_share"]),
                       int(report["min_rows"]), float(report["missing_share"]), int(report["sample_rows"]),
                       int(report["sample_seed"]))
        settings.check()
        return settings

    def check(self) -> None:
        """A sample smaller than min_rows could never judge a feature: refuse it (ValueError)."""
        if self.sample_rows < self.min_rows:
            raise ValueError(f"monitoring.report.sample_rows ({self.sample_rows}) must be at least min_rows "
                             f"({self.min_rows})")


@dataclass(frozen=True)
class ColumnDrift:
    method: str
    score: float
    threshold: float
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": round(self.score, 4)}


@dataclass(frozen=True)
class DriftResult:
    features: dict[str, ColumnDrift]  # the features judged
    prediction: ColumnDrift
    html: str  # Evidently's standalone page
    not_judged: dict[str, str] = field(default_factory=dict)  # feature -> why (too few values sent)

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, column in self.features.items() if column.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0


@contextmanager
def _quiet_third_party() -> Iterator[None]:
    """Evidently 0.7 on pandas 3 emits deprecation warnings on every call (e.g. `dropna(inplace=True)`);
    they are about Evidently's code, not our data, and would bury the report's own output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(evidently|litestar|plotly)(\.|$)")
        yield


def import_evidently() -> Any:
    """Import Evidently 0.7.23 on pandas 3.

    Evidently's legacy `TestColumnsType` imports `pandas.core.dtypes.common.infer_dtype_from_object`,
    a private pandas function removed in pandas 3, and `import evidently` loads that module
    eagerly, so the import fails. We never run that test: a stand-in that refuses to be called
    lets the import succeed without pretending to implement it. Drop this once an Evidently
    release imports on pandas 3 (0.7.23, the newest on PyPI here, does not).
    """
    import pandas.core.dtypes.common as common

    if not hasattr(common, "infer_dtype_from_object"):
        def infer_dtype_from_object(dtype: Any) -> Any:
            raise NotImplementedError("pandas 3 removed infer_dtype_from_object; Evidently's TestColumnsType "
                                      "is not supported in this project")
        common.infer_dtype_from_object = infer_dtype_from_object
    with _quiet_third_party():
        import evidently
    return evidently


def frames(profile: dict[str, Any], sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """(reference, current, numeric columns, categorical columns) with the same columns and types; `current` is the
    window's sample (monitoring/sample.py: its `inputs` and `prediction`).

    Missing values stay missing (NaN, None): drift is judged on the values that were sent, which is
    what Evidently does with them, and how often a feature was missing is a data-quality finding of
    its own (monitoring/data_quality.py) rather than a category that would read as drift.
    """
    features = list(profile["features"])
    columns = [*features, PREDICTION]
    kinds = {name: spec["kind"] for name, spec in profile["features"].items()}
    kinds[PREDICTION] = profile["prediction"]["kind"]
    reference = pd.DataFrame(profile["sample"])[columns]
    current = pd.DataFrame.from_records(list(sample["inputs"]), columns=features)
    current[PREDICTION] = [prediction_value(profile["prediction"], p) for p in sample["prediction"]]
    numeric = [c for c in columns if kinds[c] == "numeric"]
    categorical = [c for c in columns if kinds[c] == "categorical"]
    for frame in (reference, current):
        frame[numeric] = frame[numeric].astype(float)
        for column in categorical:
            values = frame[column]
            frame[column] = values.astype(str).astype(object).where(values.notna(), None)
    return reference, current, numeric, categorical


def measure(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
            settings: DriftSettings) -> DriftResult:
    """Run Evidently's drift preset on the features and a value-drift test on the prediction.

    A feature with fewer than `min_rows` values sent in the window is not judged (Evidently refuses an
    empty column, and a handful of values is noise): it is listed in `not_judged` with the reason.
    """
    import_evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    sent = current.notna().sum()
    not_judged = {c: f"not judged: {_values(sent[c])} sent, {settings.min_rows} needed (min_rows)"
                  for c in reference.columns if c != PREDICTION and sent[c] < settings.min_rows}
    features = [c for c in reference.columns if c != PREDICTION and c not in not_judged]
    definition = DataDefinition(numerical_columns=[c for c in numeric if c not in not_judged],
                                categorical_columns=[c for c in categorical if c not in not_judged])
    metrics: list[Any] = [ValueDrift(column=PREDICTION, method=settings.method, threshold=settings.threshold)]
    if features:  # an empty column list would mean every column to Evidently
        metrics.insert(0, DataDriftPreset(columns=features, method=settings.method, threshold=settings.threshold,
                                          drift_share=settings.drift_share))
    columns_used = [*features, PREDICTION]
    current, reference = current[columns_used], reference[columns_used]
    report = Report(metrics, include_tests=True)
    with _quiet_third_party():
        snapshot = report.run(current_data=Dataset.from_pandas(current, data_definition=definition),
                              reference_data=Dataset.from_pandas(reference, data_definition=definition))
        results = snapshot.dict()
        html = snapshot.get_html_str(as_iframe=False)
    columns = _columns(results)
    missing = [c for c in [*features, PREDICTION] if c not in columns]
    if missing:
        raise RuntimeError(f"Evidently returned no drift result for {', '.join(missing)}")
    return DriftResult({name: columns[name] for name in features}, columns[PREDICTION], html, not_judged)


def _values(n: int) -> str:
    return "no values" if n == 0 else f"only {n} value{'s' if n > 1 else ''}"


def _columns(results: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Per-column score (ValueDrift metrics) and verdict (their tests) from Evidently's result dict.

    The verdict comes from Evidently's own test (FAIL = drift detected) rather than a comparison
    of our own: whether a larger score means drift depends on the test (distances vs p-values).
    """
    failed = {}
    for test in results["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            failed[params["column"]] = test["status"] == "FAIL"
    columns = {}
    for metric in results["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            name = config["column"]
            columns[name] = ColumnDrift(config["method"], float(metric["value"]), float(config["threshold"]),
                                        failed[name])
    return columns
