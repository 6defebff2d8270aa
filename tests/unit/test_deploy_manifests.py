"""deploy/ manifests: valid against the real Kubernetes JSON schemas (offline), and consistent with the image.

The schemas come with the kubernetes-validate package (strict variants: unknown fields are errors). The
semantic checks catch what a schema cannot: probes on the wrong path, a Service that selects no pod, a port that
is not the image's, a log volume that is not where the image writes.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scripts import container as tooling
from tests.support import PROJECT_ROOT
from tests.support.container import HARDENED_ENV

DEPLOY = PROJECT_ROOT / "deploy"
# The packages the Bento carries (bentofile.yaml): every variable the Deployment sets is read in one of them.
SERVED_PACKAGES = [PROJECT_ROOT / name.strip("/") for name in
                   yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())["include"]]
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")  # an older cluster still common in production, and a recent one


def load_manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/, by kind (kustomization.yaml is kustomize's, not the cluster's)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in objects, f"two {document['kind']} objects: extend load_manifests()"
            objects[document["kind"]] = document
    return objects


MANIFESTS = load_manifests()


def api_container() -> dict[str, Any]:
    (container,) = MANIFESTS["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def drift_check_pod() -> dict[str, Any]:
    return MANIFESTS["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def drift_check_containers() -> list[dict[str, Any]]:
    return drift_check_pod()["containers"]


def container_port(port: int | str) -> int:
    """A numeric port, or a named one resolved against the container's ports."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in api_container()["ports"] if p.get("name") == port)


def env_value(name: str) -> str:
    return next(e.get("value") for e in api_container()["env"] if e["name"] == name)


def test_deploy_has_the_objects_kustomize_applies() -> None:
    assert set(MANIFESTS) == {"Deployment", "Service", "HorizontalPodAutoscaler", "CronJob"}
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"].split(":")[0] for c in [api_container(), *drift_check_containers()]}
    assert images == used, "kustomize sets every image the manifests use, and only those"


def test_the_api_image_is_named_by_one_version_never_a_moving_tag() -> None:
    """The image of one Bento serves one served set: the Deployment must not follow `latest`."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    api = next(image for image in kustomization["images"] if image["name"] == api_container()["image"])
    assert api["newTag"] != "latest" and ":" not in api_container()["image"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_manifest_is_valid_kubernetes(kind: str, version: str) -> None:
    kubernetes_validate.validate(MANIFESTS[kind], version, strict=True)


def test_schema_validation_rejects_broken_manifests() -> None:
    """The validator is strict enough to matter: a misspelt field and a wrong type both fail."""
    misspelt = copy.deepcopy(MANIFESTS["Deployment"])
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/livez"}}
    wrong_type = copy.deepcopy(MANIFESTS["Service"])
    wrong_type["spec"]["ports"][0]["port"] = "three thousand"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_selectors_match_the_pod_labels() -> None:
    deployment, service = MANIFESTS["Deployment"], MANIFESTS["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_ports_are_the_images_port() -> None:
    assert [container_port(p["name"]) for p in api_container()["ports"]] == [tooling.SERVICE_PORT]
    for port in MANIFESTS["Service"]["spec"]["ports"]:
        assert container_port(port["targetPort"]) == tooling.SERVICE_PORT


def test_probes_use_bentoml_health_endpoints() -> None:
    container = api_container()
    expected = {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"}
    for probe, path in expected.items():
        assert container[probe]["httpGet"]["path"] == path
        assert container_port(container[probe]["httpGet"]["port"]) == tooling.SERVICE_PORT


def _secret_refs(container: dict) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}


def test_every_replica_logs_to_the_shared_database_from_a_secret() -> None:
    """No pod keeps its own log (a scale-down would delete it): the URL and password come from a Secret."""
    container, pod = api_container(), MANIFESTS["Deployment"]["spec"]["template"]["spec"]
    secrets = _secret_refs(container)
    assert secrets["PREDICTION_LOG_URL"] == ("prediction-service-prediction-log", "url")
    assert secrets["PREDICTION_LOG_PASSWORD"] == ("prediction-service-prediction-log", "password")
    names = {e["name"] for e in container["env"]}
    assert "PREDICTION_LOG_DIR" not in names
    assert tooling.PREDICTION_LOG_DIR not in {m["mountPath"] for m in container["volumeMounts"]}
    assert float(env_value("PREDICTION_LOG_RETENTION_DAYS")) > 0
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])


def test_runs_as_the_images_non_root_user_with_a_read_only_root() -> None:
    container, pod = api_container(), MANIFESTS["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == tooling.BENTO_UID
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # what tests/container_support.py runs the image with, so the container tests vouch for this set-up
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    assert {name: env_value(name) for name in HARDENED_ENV} == HARDENED_ENV


def test_api_key_comes_from_a_secret() -> None:
    (api_key,) = [e for e in api_container()["env"] if e["name"] == "API_KEY"]
    assert set(api_key) == {"name", "valueFrom"} and "secretKeyRef" in api_key["valueFrom"]


def test_autoscaler_drives_the_deployment_on_requested_cpu() -> None:
    hpa, deployment = MANIFESTS["HorizontalPodAutoscaler"], MANIFESTS["Deployment"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "a fixed replica count fights the autoscaler on every apply"
    assert 1 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    resources = api_container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys() and {"cpu", "memory"} <= resources["limits"].keys()


# read by libraries, not by the service's code
LIBRARY_VARIABLES = {"BENTOML_HOME", "OMP_NUM_THREADS"}


def test_service_reads_every_variable_the_deployment_sets() -> None:
    """A misspelt variable is silently ignored by the service: each one must appear in the served code."""
    source = "\n".join(path.read_text() for package in SERVED_PACKAGES for path in package.glob("*.py"))
    for name in {e["name"] for e in api_container()["env"]} - LIBRARY_VARIABLES:
        assert f'"{name}"' in source, f"{name} is set by deploy/deployment.yaml but never read by the served code"


# -- the scheduled drift check (deploy/drift-check.yaml) --------------------------------------------------

def test_drift_check_runs_the_monitor_for_every_declared_task_with_arguments_it_accepts() -> None:
    """One container checks every task params.yaml declares (`--all`), so the manifest names none."""
    from monitoring.check import parse_args

    (container,) = drift_check_containers()
    assert container["command"] == ["python", "-m", "monitoring.check"]  # what `make monitor` runs
    args = parse_args(container["args"])  # argparse exits on an argument the monitor does not know
    assert args.all and args.task is None, "a task named in the manifest would go stale when params.yaml changes"
    assert args.since == "24h"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert args.log_dir is None and args.log_url is None  # the location comes from the environment
    assert _secret_refs(container)["PREDICTION_LOG_URL"] == _secret_refs(api_container())["PREDICTION_LOG_URL"]
    assert str(args.out) in mounts


def test_drift_check_acts_on_the_exit_codes_and_never_overlaps() -> None:
    """Every verdict and a broken monitor fail the Job at once; only "nothing to judge" (2) is retried."""
    from monitoring.check import MEANINGS

    cron = MANIFESTS["CronJob"]["spec"]
    assert len(cron["schedule"].split()) == 5 and cron["concurrencyPolicy"] == "Forbid"
    job = cron["jobTemplate"]["spec"]
    (fail, evicted) = job["podFailurePolicy"]["rules"]
    assert fail["action"] == "FailJob" and fail["onExitCodes"]["operator"] == "In"
    assert set(fail["onExitCodes"]["values"]) == set(MEANINGS) - {0, 2}, "drift is a verdict: a retry repeats it"
    assert evicted == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert 0 < job["backoffLimit"] <= 3  # exit 2 (a database that did not answer) gets another chance or two
    assert drift_check_pod()["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert cron["suspend"] is False  # the log every replica writes to is PostgreSQL: there is something to judge


def test_drift_check_is_as_locked_down_as_the_api() -> None:
    pod = drift_check_pod()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    for container in drift_check_containers():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["BENTOML_HOME"].startswith("/tmp/") and "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
        assert set(env) - set(_secret_refs(container)) <= LIBRARY_VARIABLES, "a variable the monitor does not read"
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
