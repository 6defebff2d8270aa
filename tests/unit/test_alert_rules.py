"""Alert rules, their promtool tests and the Grafana dashboard agree with the service and with params.yaml.

In process: YAML and JSON only. promtool itself (check rules, test rules) and a real Prometheus evaluating
every rule and panel against a live server run in tests/service/test_prometheus_alerts.py.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client import REGISTRY

import bento_service.metrics  # noqa: F401 - registers the service's metrics
from tests.support import PROJECT_ROOT
from tests.support.prometheus import (
    CONFIG,
    DASHBOARD,
    RULE_TESTS,
    alerts,
    dashboard_queries,
    load_rules,
    quick_rules,
)

RULES = load_rules()
ALERTS = alerts(RULES)
PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
GRAFANA = PROJECT_ROOT / "monitoring" / "grafana"
# BentoML's own request metrics (their names are checked on a live server by the service tier), Prometheus's own.
BENTOML_METRICS = {"bentoml_service_request_total", "bentoml_service_request_duration_seconds_bucket"}
PROMETHEUS_METRICS = {"up", "ALERTS"}
PROMQL_WORDS = {"sum", "max", "min", "count", "avg", "rate", "increase", "histogram_quantile", "label_replace", "by",
                "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "vector", "e"}


def service_metric_names() -> set[str]:
    """Every series name the service's own metrics expose (counter -> _total, histogram -> _bucket ...)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix for family in REGISTRY.collect() for suffix in suffixes.get(family.type, ("",))}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside label matchers, label lists and strings."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)) - PROMQL_WORDS


def test_every_alert_has_a_severity_summary_and_description() -> None:
    assert len(ALERTS) >= 9
    for name, rule in ALERTS.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description"} <= rule["annotations"].keys(), name


def test_the_alerts_the_issue_asks_for_exist() -> None:
    reads = {name: metric_names(rule["expr"]) for name, rule in ALERTS.items()}
    wanted = {"FeatureDrift": "feature_drift_score", "PredictionDrift": "prediction_drift_score",
              "PredictionServerErrors": "bentoml_service_request_total",
              "PredictionClientErrors": "bentoml_service_request_total",
              "PredictionLatencyHigh": "bentoml_service_request_duration_seconds_bucket",
              "PredictionLogWriteFailures": "prediction_log_write_failures_total",
              "NoPredictionTraffic": "bentoml_service_request_total",
              "PredictionWorkerNotReady": "prediction_worker_ready", "ModelLiveErrorHigh": "model_live_rmse_usd"}
    for alert, metric in wanted.items():
        assert metric in reads[alert], (alert, reads.get(alert))
    assert {"model_live_error_ratio", "model_reference_rmse_usd", "model_reference_error_ratio"} <= reads[
        "ModelLiveErrorHigh"]
    assert "histogram_quantile(0.99" in ALERTS["PredictionLatencyHigh"]["expr"]
    assert '"5.."' in ALERTS["PredictionServerErrors"]["expr"] and '"4.."' in ALERTS["PredictionClientErrors"]["expr"]


@pytest.mark.parametrize("alert", ["FeatureDrift", "PredictionDrift"])
def test_drift_thresholds_are_params_yaml(alert: str) -> None:
    """One source of truth: the rule's threshold (and the number its summary prints) is monitoring.live.threshold."""
    threshold = float(PARAMS["monitoring"]["live"]["threshold"])
    match = re.fullmatch(r"max by \([a-z, ]+\) \((feature|prediction)_drift_score\) >= ([0-9.]+)",
                         ALERTS[alert]["expr"].strip())
    assert match, ALERTS[alert]["expr"]
    assert float(match[2]) == threshold, f"{alert} fires at {match[2]}, params.yaml says {threshold}"
    assert f">= {threshold:g})" in ALERTS[alert]["annotations"]["summary"]


def test_rules_read_only_metrics_that_exist() -> None:
    known = service_metric_names() | BENTOML_METRICS | PROMETHEUS_METRICS
    for name, rule in ALERTS.items():
        assert metric_names(rule["expr"]) <= known, (name, metric_names(rule["expr"]) - known)
    for panel, expr in dashboard_queries():
        assert metric_names(expr) <= known, (panel, metric_names(expr) - known)


def test_metric_name_parser_sees_through_label_matchers() -> None:
    expr = 'sum by (job) (rate(x_total{endpoint=~"/a|b", code="5.."}[5m])) / on (job) max(y) > 0.1'
    assert metric_names(expr) == {"x_total", "y"}


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            assert check["alertname"] in ALERTS, f"{case['name']}: no alert {check['alertname']}"
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
            for expected in check["exp_alerts"]:
                assert expected["exp_annotations"].keys() == ALERTS[check["alertname"]]["annotations"].keys()
    assert fires == set(ALERTS), f"no firing case for {set(ALERTS) - fires}"
    assert quiet == set(ALERTS), f"no quiet case for {set(ALERTS) - quiet}"


def test_quick_rules_change_only_the_hold_durations() -> None:
    quick = alerts(quick_rules(RULES, hold="3s"))
    assert quick.keys() == ALERTS.keys()
    for name, rule in ALERTS.items():
        assert {k: v for k, v in quick[name].items() if k != "for"} == {k: v for k, v in rule.items() if k != "for"}
        assert quick[name].get("for") == ("3s" if "for" in rule else None)
    assert ALERTS["FeatureDrift"]["for"] == "15m"  # the real file is untouched


def test_example_config_loads_the_rules_under_the_job_the_rules_name() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["rules.yml"]
    (job,) = config["scrape_configs"]
    assert f'job="{job["job_name"]}"' in ALERTS["PredictionServiceDown"]["expr"]
    assert job["metrics_path"] == "/metrics"


# -- the Grafana dashboard ---------------------------------------------------------------------------------

DASHBOARD_JSON = json.loads(DASHBOARD.read_text())
PANELS = [panel for panel in DASHBOARD_JSON["panels"] if panel["type"] != "row"]


def test_dashboard_panels_are_well_formed() -> None:
    ids = [panel["id"] for panel in DASHBOARD_JSON["panels"]]
    assert len(ids) == len(set(ids))
    variable, _ = DASHBOARD_JSON["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for needed in ("bentoml_service_request_total", "histogram_quantile(0.99, sum by (le) (rate("
                   "bentoml_service_request_duration_seconds_bucket", 'http_response_code=~"4.."',
                   'http_response_code=~"5.."', "sum by (task, model, arm) (rate(predictions_total",
                   "feature_drift_score", "prediction_drift_score", "prediction_log_write_failures_total"):
        assert needed in exprs, needed


def test_the_task_variable_lists_the_tasks_that_predicted_and_selects_all_by_default() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD_JSON["templating"]["list"]}
    task = variables["task"]
    assert task["type"] == "query" and task["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    match = re.fullmatch(r"label_values\((\w+), task\)", task["query"]["query"])
    assert match and task["definition"] == task["query"]["query"], task["query"]
    assert "task" in REGISTRY._names_to_collectors[match[1]]._labelnames  # the metric carries the label
    assert task["multi"] and task["includeAll"] and task["allValue"] == ".+"
    assert task["current"]["value"] == ["$__all"]


def task_labelled_metrics() -> set[str]:
    """Series names (predictions_total, prediction_request_rows_bucket ...) of the service's metrics with a `task`
    label."""
    return {name for name, collector in REGISTRY._names_to_collectors.items()
            if "task" in getattr(collector, "_labelnames", ())}


def test_every_panel_follows_the_task_variable() -> None:
    """A query on a metric with a `task` label filters it by $task; BentoML's request metrics have no task label,
    so they filter the route, /<task>/predict."""
    raw = [(panel["title"], target["expr"]) for panel in PANELS for target in panel["targets"]]
    labelled = task_labelled_metrics()
    assert {"predictions_total", "feature_drift_score", "prediction_request_rows_bucket"} <= labelled
    for title, expr in raw:
        for metric in metric_names(expr) & labelled:
            assert re.search(rf'\b{metric}\{{[^}}]*task=~"\$task"', expr), (title, metric)
        for metric in metric_names(expr) & BENTOML_METRICS:
            assert re.search(rf'\b{metric}\{{[^}}]*endpoint=~"/\$task/predict', expr), (title, metric)


def test_the_dashboard_names_no_task_and_no_task_specific_metric() -> None:
    """Panels read metrics every task has; a declaration's own prediction metric (serving.metric) is per task and
    would leave the dashboard behind when a task is added."""
    from tests.support.tasks import SCHEMAS

    text = DASHBOARD.read_text()
    for task, schema in SCHEMAS.items():
        assert not re.search(rf"\b{task}\b", text, re.IGNORECASE), task
        assert schema.prediction_metric not in text, schema.prediction_metric


def test_dashboard_drift_threshold_is_params_yaml() -> None:
    threshold = float(PARAMS["monitoring"]["live"]["threshold"])
    for panel in PANELS:
        if "drift_score" in panel["targets"][0]["expr"]:
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert steps[-1] == {"color": "red", "value": threshold}, panel["title"]


def test_provisioning_points_grafana_at_the_dashboard_and_prometheus() -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "${PROMETHEUS_URL}"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/prediction-service.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
    assert "--" not in DASHBOARD_JSON["uid"] and len(DASHBOARD_JSON["uid"]) <= 40  # Grafana's uid limits
