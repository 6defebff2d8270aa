"""Pytest support for testing a Bento's container image for real: build it, run it on loopback, stop it cleanly.

Why a module of its own: every container test needs the same careful plumbing (pick an engine, build once per
session, a log volume the image's uid 1034 can write, wait for /readyz, graceful stop, no container or port
left behind), and a test that gets it slightly wrong leaves servers listening on a shared machine.

How to use it in a test module (the service's container test follows this shape); tests/conftest.py registers
this module as a plugin (`pytest_plugins = ["tests.support.container"]`), so its fixtures need no import:

    import pytest
    from tests.support.container import start_container

    pytestmark = pytest.mark.container                      # CI's lint-and-test job deselects these

    @pytest.fixture(scope="session")
    def service_image(bento_image_builder):
        return bento_image_builder("prediction_service")    # latest built Bento of that name, built once

    def test_predictions_are_logged(container_engine, service_image, tmp_path):
        with start_container(container_engine, service_image, tmp_path / "logs", env={"API_KEY": "k"}) as app:
            status, body = app.post("/iris/predict", {...}, headers={"Authorization": "Bearer k"})
            assert status == 200
        assert app.exit_code == 0                           # stopped with SIGTERM, exited cleanly
        assert (tmp_path / "logs" / "predictions.db").exists()

`start_container` runs the image as deploy/ does (read-only root filesystem, /tmp writable, no capabilities);
`image_config` and `modules_in_image` check the image itself (user, healthcheck, size, no training packages).

Without any engine the tests are skipped with the reason in pytest's summary; with REQUIRE_CONTAINER_TESTS=1
(set by .ci/run) that skip becomes a failure. Images are built with scripts/container.py, so CONTAINER_ENGINE,
CONTAINER_LOCAL_BASE=1 (no registry: local Debian base + host CA) and CONTAINER_STORAGE_ROOT apply here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts import container as tooling
from scripts.server_process import free_port

REQUIRE_VARIABLE = "REQUIRE_CONTAINER_TESTS"
SESSION_LABEL = "bento-test-session"
SESSION_ID = uuid.uuid4().hex[:12]
READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 30
# What deploy/deployment.yaml's securityContext asks of the image: a read-only root filesystem with a writable
# /tmp, no capabilities, no privilege escalation. BentoML creates its store dirs under BENTOML_HOME at start.
HARDENED_RUN_ARGS = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
HARDENED_ENV = {"BENTOML_HOME": "/tmp/bentoml"}


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`, or fail when REQUIRE_CONTAINER_TESTS=1: CI must never pass by skipping."""
    if tooling.env_flag(os.environ, REQUIRE_VARIABLE):
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1 turns this skip into a failure)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Engine:
    """The engine that runs containers, with the environment scripts/container.py prepared for it."""

    name: str
    env: Mapping[str, str]

    def command(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.name, *args], env=dict(self.env), capture_output=True, text=True, check=check, timeout=timeout
        )


def find_engine() -> Engine:
    """docker (daemon up) or podman; buildah alone builds images but cannot run a server, so it is a skip."""
    try:
        name = tooling.detect_engine(os.environ)
    except tooling.ContainerError as error:
        pytest.fail(str(error), pytrace=False)
    if name is None:
        skip_or_fail("no container engine (docker with a running daemon, podman or buildah)")
    if name == "buildah":
        skip_or_fail("only buildah is installed: it builds images but cannot run them; install podman")
    return Engine(name, tooling.engine_environment(name, os.environ))


def remove_session_containers(engine: Engine) -> None:
    """Remove every container this test session started, whatever state the tests left them in."""
    ids = engine.command("ps", "-a", "-q", "--filter", f"label={SESSION_LABEL}={SESSION_ID}", check=False).stdout
    if ids.split():
        engine.command("rm", "-f", *ids.split(), check=False)


@pytest.fixture(scope="session")
def container_engine() -> Iterator[Engine]:
    engine = find_engine()
    yield engine
    remove_session_containers(engine)


def build_image(bento: str, image_name: str, env: Mapping[str, str] | None = None) -> str:
    """Build `bento` (a name, for its latest version, or name:version) with the project's CLI; return its tag.

    Runs scripts/container.py as `make container` does, in a subprocess so a BENTOML_HOME in `env` is honoured.
    """
    selector = ["--bento", bento] if ":" in bento else ["--name", bento]
    cmd = [sys.executable, str(tooling.PROJECT_ROOT / "scripts" / "container.py"), "build", *selector,
           "--image-name", image_name]
    result = subprocess.run(cmd, env=dict(env or os.environ), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        hint = "" if tooling.env_flag(env or os.environ, "CONTAINER_LOCAL_BASE") else (
            "\n(no container registry here? CONTAINER_LOCAL_BASE=1 builds on a local Debian base image)")
        pytest.fail(f"building the image of {bento} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}{hint}",
                    pytrace=False)
    print(result.stdout)
    return f"{image_name}:latest"


@pytest.fixture(scope="session")
def bento_image_builder(container_engine: Engine) -> Iterator[Callable[..., str]]:
    """A function bento -> image tag that builds each Bento once per session; removes its images at the end.

    Images are named `<bento name>-test` so the user's own `make container` image is never replaced or removed.
    """
    built: dict[str, str] = {}

    def build(bento: str, env: Mapping[str, str] | None = None) -> str:
        if bento not in built:
            built[bento] = build_image(bento, f"{bento.split(':')[0]}-test", env)
        return built[bento]

    yield build
    for image in built.values():
        versions = container_engine.command("images", "-q", image.rsplit(":", 1)[0], check=False).stdout.split()
        container_engine.command("rmi", "-f", *sorted(set(versions)), check=False)


def image_config(engine: Engine, image: str) -> dict[str, Any]:
    """The image's Config (User, Env, Volumes, ExposedPorts...) plus Size and Healthcheck, docker or podman."""
    inspected = json.loads(engine.command("image", "inspect", image).stdout)[0]
    config = dict(inspected.get("Config") or {})
    config["Size"] = inspected["Size"]
    config["Healthcheck"] = config.get("Healthcheck") or inspected.get("Healthcheck")  # podman: top level
    return config


def modules_in_image(engine: Engine, image: str, modules: list[str]) -> list[str]:
    """Which of `modules` the image's python can import: training-only packages must not be there."""
    probe = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    result = engine.command("run", "--rm", "--label", f"{SESSION_LABEL}={SESSION_ID}", "--entrypoint", "python",
                            image, "-c", probe, *modules)
    return result.stdout.split()


def make_log_volume(path: Path) -> Path:
    """A host directory the image's `bentoml` user (uid 1034) can write, for mounting at PREDICTION_LOG_DIR."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        os.chown(path, tooling.BENTO_UID, tooling.BENTO_UID)
    except PermissionError:  # not root: let any uid write (a throwaway test directory)
        path.chmod(0o777)
    return path


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RunningContainer:
    """A started container: HTTP helpers while it runs; exit code, logs and stop time once the context ends."""

    engine: Engine
    name: str
    port: int
    ready_seconds: float = 0.0
    exit_code: int | None = None
    stop_seconds: float | None = None
    logs: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, payload: Any = None, headers: Mapping[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, Any]:
        """(status, body): JSON bodies parsed, others as text; HTTP errors are answers, not exceptions."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, payload: Any, **kwargs: Any) -> tuple[int, Any]:
        return self.request("POST", path, payload, **kwargs)

    def is_running(self) -> bool:
        state = self.engine.command("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def current_logs(self) -> str:
        result = self.engine.command("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Poll /readyz until 200; fail early, with the container's logs, if it exits first."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError):
                if self.get("/readyz", timeout=2)[0] == 200:
                    self.ready_seconds = time.monotonic() - started
                    return self.ready_seconds
            if not self.is_running():
                pytest.fail(f"container {self.name} exited before /readyz answered:\n{self.current_logs()[-4000:]}",
                            pytrace=False)
            time.sleep(0.25)
        pytest.fail(f"/readyz not ready after {timeout:.0f} s:\n{self.current_logs()[-4000:]}", pytrace=False)

    def stop(self, grace: int = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, wait up to `grace` seconds, record exit code and logs; then remove the container."""
        started = time.monotonic()
        self.engine.command("stop", "--time", str(grace), self.name, check=False, timeout=grace + 30)
        self.stop_seconds = time.monotonic() - started
        code = self.engine.command("inspect", "--format", "{{.State.ExitCode}}", self.name, check=False).stdout
        self.exit_code = int(code) if code.strip().lstrip("-").isdigit() else None
        self.logs = self.current_logs()
        self.engine.command("rm", "-f", self.name, check=False)


def run_command(
    engine: Engine, image: str, name: str, port: int, log_dir: Path, env: Mapping[str, str], hardened: bool = True
) -> list[str]:
    """`run -d` with the host side bound to loopback only and the log volume at the image's PREDICTION_LOG_DIR.

    `hardened` runs it as deploy/ does (read-only root filesystem...), so passing tests vouch for the manifests.
    """
    cmd = ["run", "-d", "--name", name, "--label", f"{SESSION_LABEL}={SESSION_ID}",
           "-p", f"127.0.0.1:{port}:{tooling.SERVICE_PORT}", "-v", f"{log_dir}:{tooling.PREDICTION_LOG_DIR}"]
    if hardened:
        cmd += HARDENED_RUN_ARGS
        env = {**HARDENED_ENV, **env}
    for key, value in env.items():
        cmd += ["-e", f"{key}={value}"]
    return [*cmd, image]


@contextlib.contextmanager
def start_container(
    engine: Engine, image: str, log_dir: Path, env: Mapping[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS, hardened: bool = True,
) -> Iterator[RunningContainer]:
    """Run `image` until the block ends, then stop it gracefully and remove it; the port is free afterwards."""
    port = free_port()
    container = RunningContainer(engine, f"bento-test-{SESSION_ID}-{uuid.uuid4().hex[:6]}", port)
    command = run_command(engine, image, container.name, port, make_log_volume(log_dir), env or {}, hardened)
    started = engine.command(*command, check=False)
    if started.returncode != 0:
        engine.command("rm", "-f", container.name, check=False)
        pytest.fail(f"{engine.name} run failed: {started.stderr.strip()}", pytrace=False)
    try:
        container.wait_until_ready(ready_timeout)
        yield container
    finally:
        container.stop()
        if port_is_open(port):
            pytest.fail(f"port {port} still answers after the container was removed", pytrace=False)
