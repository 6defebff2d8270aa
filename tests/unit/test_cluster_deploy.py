"""deploy/dask/: the Dask cluster for the pipeline's fits, checked offline like deploy/.

The Kubernetes manifests against the real JSON schemas (strict), the compose file against the compose
specification; then what a schema cannot see: the workers reach the scheduler's Service, run one thread each, and
carry the stages' native-thread and CPU-dispatch pins; the workers' requirements are the pipeline's own pins.
"""

from __future__ import annotations

import os
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stages.fits import CPU_PINS
from stages.lifetime import THREAD_VARIABLES
from tests.support import PROJECT_ROOT
from tests.unit.test_compose import schema_errors
from tests.unit.test_deploy_manifests import KUBERNETES_VERSIONS

DASK = PROJECT_ROOT / "deploy" / "dask"


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object under deploy/dask/, by (kind, component)."""
    objects = {}
    for path in sorted(DASK.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "compose.yaml"):
            continue
        for document in yaml.safe_load_all(path.read_text()):
            labels = document["metadata"].get("labels", {})
            objects[(document["kind"], labels.get("app.kubernetes.io/component", ""))] = document
    return objects


MANIFESTS = manifests()


def container(component: str) -> dict[str, Any]:
    (only,) = MANIFESTS[("Deployment", component)]["spec"]["template"]["spec"]["containers"]
    return only


def stage_pins() -> dict[str, str]:
    """The CPU-dispatch pins a stage process sets (stages/__init__.py, imported by this test process too)."""
    import stages  # noqa: F401

    return {name: os.environ[name] for name in CPU_PINS if name in os.environ}


def dockerfile_env() -> dict[str, str]:
    text = (DASK / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("ENV ")]
    return {name: value.strip('"') for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}


def test_kustomize_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((DASK / "kustomization.yaml").read_text())
    on_disk = {p.name for p in DASK.glob("*.yaml")} - {"kustomization.yaml", "compose.yaml"}
    assert set(kustomization["resources"]) == on_disk
    assert set(MANIFESTS) == {("Deployment", "scheduler"), ("Service", ""), ("Deployment", "worker")}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("key", sorted(MANIFESTS))
def test_manifest_is_valid_kubernetes(key: tuple[str, str], version: str) -> None:
    kubernetes_validate.validate(MANIFESTS[key], version, strict=True)


def test_the_service_selects_the_scheduler_and_the_workers_reach_it() -> None:
    service = MANIFESTS[("Service", "")]
    scheduler = MANIFESTS[("Deployment", "scheduler")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= scheduler.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in [p["name"] for p in container("scheduler")["ports"]]
    assert f"tcp://{service['metadata']['name']}:{port['port']}" in container("worker")["command"]


def test_workers_run_one_thread_each_from_the_same_image() -> None:
    command = container("worker")["command"]
    assert command[command.index("--nthreads") + 1] == "1"
    assert container("worker")["image"] == container("scheduler")["image"]
    compose = yaml.safe_load((DASK / "compose.yaml").read_text())["services"]
    assert compose["worker"]["command"][compose["worker"]["command"].index("--nthreads") + 1] == "1"
    assert "tcp://scheduler:8786" in compose["worker"]["command"]


def test_the_image_carries_the_stages_pins() -> None:
    env = dockerfile_env()
    assert {name: env[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "1")
    assert {name: env[name] for name in stage_pins()} == stage_pins()
    assert env["PYTHONPATH"] == "/app" and "COPY domain/ /app/domain/" in (DASK / "Dockerfile").read_text()


def test_compose_file_matches_the_compose_specification() -> None:
    document = yaml.safe_load((DASK / "compose.yaml").read_text())
    assert schema_errors(document) == []
    assert all(port.startswith("127.0.0.1:") for port in document["services"]["scheduler"]["ports"])


def pins(name: str) -> dict[str, str]:
    lines = (PROJECT_ROOT / name).read_text().splitlines()
    return dict(line.split("#")[0].strip().split("==") for line in lines if "==" in line.split("#")[0])


def test_workers_install_the_pipelines_own_versions() -> None:
    cluster, pipeline = pins("requirements-cluster.txt"), pins("requirements.txt")
    assert {"dask[distributed]", "scikit-learn", "numpy", "scipy", "pandas", "joblib"} <= set(cluster)
    assert {name: pipeline.get(name) for name in cluster} == cluster
