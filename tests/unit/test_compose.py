"""compose.yaml is a valid Compose file that wires the team stack together, checked offline.

No container registry is reachable here, so the stack is never started: the file is validated in process against
the Compose specification's JSON schema (the copy check-jsonschema vendors), and the wiring a user relies on is
checked by structure: every service has a health check, dependencies wait for health, data lives in named volumes,
ports are published on loopback only, the service image is the one `make container` builds, and Prometheus scrapes
the prediction service's port.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import yaml

from scripts.container import PREDICTION_LOG_DIR
from tests.support import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "compose.yaml"
COMPOSE_SCHEMA = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
SERVICES = {"postgres", "mlflow", "prediction-service", "prometheus"}


def load(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Where a Compose document breaks the Compose specification (empty: valid)."""
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification() -> None:
    assert schema_errors(load()) == []


def test_schema_check_rejects_a_broken_compose_file() -> None:
    broken = load()
    broken["services"]["mlflow"]["healthcheck"]["intervall"] = "15s"  # misspelt key
    broken["services"]["postgres"]["ports"] = "5432:5432"  # a string where a list belongs
    assert len(schema_errors(broken)) >= 2


def test_every_service_is_health_checked_and_waits_for_what_it_needs() -> None:
    services = load()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert services["mlflow"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["prometheus"]["depends_on"] == {"prediction-service": {"condition": "service_healthy"}}
    assert "/readyz" in " ".join(services["prediction-service"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_data_lives_in_named_volumes_and_ports_stay_on_loopback() -> None:
    compose = load()
    named = set(compose["volumes"])
    mounted = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounted[target] = source
            assert source in named or source.startswith("./"), f"{name}: {volume}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert mounted["/var/lib/postgresql/data"] == "postgres-data"
    assert mounted["/mlartifacts"] == "mlflow-artifacts"
    assert mounted[PREDICTION_LOG_DIR] == "prediction-logs"
    assert mounted["/prometheus"] == "prometheus-data"
    assert named == {"postgres-data", "mlflow-artifacts", "prediction-logs", "prometheus-data"}
    for source in (s for s in mounted.values() if s.startswith("./")):
        assert (PROJECT_ROOT / source).is_file(), source


def test_mlflow_runs_on_postgresql_with_proxied_artifacts() -> None:
    services = load()["services"]
    command = services["mlflow"]["command"]
    assert any(re.fullmatch(r"--backend-store-uri=postgresql://mlflow:\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432/mlflow",
                            arg) for arg in command), command
    assert "--artifacts-destination=/mlartifacts" in command
    dockerfile = services["mlflow"]["build"]["dockerfile_inline"]
    pinned = next(line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("psycopg"))
    assert pinned.split()[0] in dockerfile, "the server image needs the driver requirements.txt pins"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_the_service_image_is_the_one_make_container_builds_and_prometheus_scrapes_it() -> None:
    compose = load()
    service = compose["services"]["prediction-service"]
    bento_name = re.search(r"^BENTO_NAME \?= (\S+)", (PROJECT_ROOT / "scripts/container.mk").read_text(), re.M)
    assert service["image"] == f"{bento_name.group(1)}:latest" and service["pull_policy"] == "never"
    prometheus = yaml.safe_load((PROJECT_ROOT / "deploy/compose/prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    container_port = service["ports"][0].rsplit(":", 1)[1]
    assert f"prediction-service:{container_port}" in targets
