"""A real Prometheus (Debian's package) for tests: the project's rules and scrape config, on loopback, in a temp dir.

The rules a test server loads are derived from monitoring/prometheus/rules.yml by `quick_rules`: the same
expressions, labels and annotations, only every `for:` shortened, so an alert that would take 15 minutes to fire
fires within seconds and the test copy cannot drift away from the real file.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from scripts.server_process import ServerProcess, free_port
from tests.support import PROJECT_ROOT

PROMETHEUS_DIR = PROJECT_ROOT / "monitoring" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules.test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
T = TypeVar("T")


def require_prometheus() -> None:
    """Skip without Debian's prometheus/promtool, or fail where CI promises them (REQUIRE_MONITORING_TESTS=1)."""
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed: run scripts/install-monitoring-tools.sh"
        if os.environ.get("REQUIRE_MONITORING_TESTS") == "1":
            pytest.fail(f"REQUIRE_MONITORING_TESTS=1 but {message}")
        pytest.skip(f"{message} (CI sets REQUIRE_MONITORING_TESTS=1)")


def load_rules(path: Path = RULES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerts(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every alerting rule of a rule file, by alert name."""
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule}


def quick_rules(rules: dict[str, Any], hold: str = "2s") -> dict[str, Any]:
    """The same rules with every `for:` set to `hold` (rules without one already fire at once)."""
    quick = copy.deepcopy(rules)
    for rule in alerts(quick).values():
        if "for" in rule:
            rule["for"] = hold
    return quick


class Prometheus(ServerProcess):
    """Prometheus scraping `targets` as the project's job, with the quick copy of the rules, in `work_dir`."""

    def __init__(self, work_dir: Path, targets: list[str], interval: str = "1s") -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "rules.yml").write_text(yaml.safe_dump(quick_rules(load_rules()), sort_keys=False))
        config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
        config["global"].update({"scrape_interval": interval, "evaluation_interval": interval})
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": targets}]
        (work_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.job = job["job_name"]
        command = [shutil.which("prometheus") or "prometheus", f"--config.file={work_dir / 'prometheus.yml'}",
                   f"--storage.tsdb.path={work_dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                   "--storage.tsdb.retention.time=1h"]
        super().__init__(command, cwd=work_dir, env=dict(os.environ), output=work_dir / "prometheus.log",
                         ready_url=f"{self.url}/-/ready")

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>: the `data` of a successful answer (raises on an error status)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the series of the result vector, each {"metric": labels, "value": [t, "v"]}."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        return data["result"]

    def alert_states(self) -> dict[str, set[str]]:
        """/api/v1/alerts: alert name -> the states ("pending", "firing") its active alerts are in."""
        states: dict[str, set[str]] = {}
        for alert in self.api("alerts")["alerts"]:
            states.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return states

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
        """Poll `probe` every half second until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"{what} not within {timeout} s; alerts: {self.alert_states()}\n{self.log_text()[-2000:]}")


DASHBOARD = PROJECT_ROOT / "monitoring" / "grafana" / "dashboards" / "prediction-service.json"
# Grafana's built-in interval variables, as a test evaluates the queries (Grafana picks >= 4 scrape intervals), and
# the dashboard's `task` variable at its default, All (its allValue).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$task": ".+"}


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, Grafana's interval variables filled in."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((f"{panel['title']} [{target['refId']}]", expr))
    return queries


AGGREGATION = re.compile(r"\b(sum|max|min|count|avg|group)\s+by\s*\(([^)]*)\)\s*\(")
SELECTOR = re.compile(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)")


def aggregations(expr: str) -> list[tuple[list[str], str]]:
    """Every `op by (labels) (...)` of a PromQL expression: (its labels, the aggregation as an expression)."""
    found = []
    for match in AGGREGATION.finditer(expr):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(expr[end], 0)
            end += 1
        labels = [label.strip() for label in match[2].split(",") if label.strip()]
        found.append((labels, expr[match.start():end]))
    return found


def matchers(expr: str) -> list[tuple[str, list[str]]]:
    """Every selector with label matchers: (metric name, the labels it filters on)."""
    quoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return [(match[1], [name for name, _ in MATCHER.findall(match[2])]) for match in SELECTOR.finditer(quoted)]
