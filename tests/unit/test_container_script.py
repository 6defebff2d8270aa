"""Unit tests of scripts/container.py and the skip logic of tests/container_support.py: no engine needed, fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import container as tooling
from tests.support import container as container_support


def fake_which(*present: str):
    return lambda name: f"/usr/bin/{name}" if name in present else None


def test_docker_is_used_only_when_its_daemon_answers() -> None:
    def detect(env=None, *present: str, daemon: bool) -> str | None:
        return tooling.detect_engine(env or {}, fake_which(*present), lambda: daemon)

    assert detect({}, "docker", "podman", "buildah", daemon=True) == "docker"
    assert detect({}, "docker", "podman", "buildah", daemon=False) == "podman"
    assert detect({}, "docker", "buildah", daemon=False) == "buildah"
    assert detect({}, "docker", daemon=False) is None
    assert detect({}, daemon=True) is None


def test_container_engine_variable_overrides_detection() -> None:
    never_asked = lambda: pytest.fail("docker info must not run when CONTAINER_ENGINE is set")  # noqa: E731
    assert tooling.detect_engine({"CONTAINER_ENGINE": "buildah"}, fake_which("podman", "buildah"), never_asked) == (
        "buildah"
    )
    with pytest.raises(tooling.ContainerError, match="not on PATH"):
        tooling.detect_engine({"CONTAINER_ENGINE": "docker"}, fake_which("podman"), never_asked)
    with pytest.raises(tooling.ContainerError, match="expected one of"):
        tooling.detect_engine({"CONTAINER_ENGINE": "kaniko"}, fake_which("kaniko"), never_asked)


def test_containers_conf_clamps_ulimits_and_selects_runc() -> None:
    text = tooling.containers_conf_text(nofile=20000, nproc=32768, runtime="runc")
    assert 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' in text
    assert '[engine]\nruntime = "runc"' in text
    assert "[engine]" not in tooling.containers_conf_text(1024, 1024, runtime=None)


def test_podman_environment_points_at_generated_files(tmp_path: Path) -> None:
    env = tooling.engine_environment("podman", {"CONTAINER_STORAGE_ROOT": str(tmp_path / "store")}, tmp_path / "cfg")
    conf = Path(env["CONTAINERS_CONF"]).read_text()
    nofile, nproc = tooling.host_limits()
    assert f"nofile={nofile}:{nofile}" in conf and f"nproc={nproc}:{nproc}" in conf
    assert f'graphroot = "{tmp_path / "store" / "graph"}"' in Path(env["CONTAINERS_STORAGE_CONF"]).read_text()
    assert tooling.engine_environment("docker", {"A": "1"}, tmp_path / "unused") == {"A": "1"}
    assert not (tmp_path / "unused").exists()


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://oneline.example/debian bookworm main contrib
"""


def test_mirror_comes_from_the_hosts_apt_sources() -> None:
    assert tooling.debian_mirror(tooling.parse_apt_sources(DEB822)) == "http://mirror.example/debian"
    assert tooling.debian_mirror(tooling.parse_apt_sources(ONE_LINE)) == "http://oneline.example/debian"
    security_only = tooling.parse_apt_sources(DEB822.split("\n\n")[1])
    assert tooling.debian_mirror(security_only) == tooling.DEFAULT_DEBIAN_MIRROR


def test_base_image_recipe_carries_the_environment_bentoml_needs() -> None:
    recipe = tooling.base_containerfile()
    assert recipe.startswith("FROM scratch\nADD rootfs.tar /\n")
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" in recipe and "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in recipe
    command = tooling.debootstrap_command(Path("/r"), "http://m/debian")
    assert command[:2] == ["debootstrap", "--variant=minbase"] and command[-3:] == ["bookworm", "/r", "http://m/debian"]
    assert "python3-venv" in command[2]


def test_containerize_replaces_base_and_mounts_host_ca_read_only(tmp_path: Path) -> None:
    command = tooling.containerize_command("podman", "svc:v1", "svc:tmp", tmp_path / "iid", "localhost/base:1", True)
    assert command[1:5] == ["-m", "bentoml", "containerize", "--backend"] and command[-1] == "svc:v1"
    options = [command[i + 1] for i, part in enumerate(command) if part == "--opt"]
    assert options == [
        f"iidfile={tmp_path / 'iid'}",
        "from=localhost/base:1",
        "volume=/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
    ]
    plain = tooling.containerize_command("docker", "svc:v1", "svc:tmp", tmp_path / "iid")
    assert "from=" not in " ".join(plain) and "volume=" not in " ".join(plain)
    with pytest.raises(tooling.ContainerError, match="docker build"):
        tooling.containerize_command("docker", "svc:v1", "svc:tmp", tmp_path / "iid", trust_host_ca=True)


def test_finishing_layer_sets_numeric_user_log_volume_and_healthcheck() -> None:
    recipe = tooling.finishing_containerfile("svc:containerized")
    assert recipe.startswith("FROM svc:containerized\n")
    assert "USER 1034:1034" in recipe and "chown 1034:1034 /data/predictions" in recipe
    assert 'VOLUME ["/data/predictions"]' in recipe and "ENV PREDICTION_LOG_DIR=/data/predictions" in recipe
    assert "HEALTHCHECK" in recipe and "/readyz" in recipe
    assert tooling.build_command("podman", Path("/c"), ["a:1", "a:2"], docker_format=True) == [
        "podman", "build", "--format", "docker", "-t", "a:1", "-t", "a:2", "/c"]


def test_human_sizes_from_buildah_become_bytes() -> None:
    assert tooling.parse_human_size("418 MB") == 418_000_000
    assert tooling.parse_human_size("1.13 GB") == 1_130_000_000
    with pytest.raises(ValueError):
        tooling.parse_human_size("418 MiB")


def test_unknown_distro_skips_bentoml_build_tools_step() -> None:
    """Pins the undocumented BentoML 1.4.40 behaviour that keeps the service image under IMAGE_SIZE_TARGET_MB."""
    from bentoml.images import Image

    lean = Image(base_image="python:3.11-slim", distro="prebuilt", python_version="3.11")
    standard = Image(python_version="3.11")
    assert not any(tooling.BENTOML_BUILD_TOOLS_MARKER in command for command in lean.commands)
    assert any(tooling.BENTOML_BUILD_TOOLS_MARKER in command for command in standard.commands)


def test_missing_engine_skips_but_fails_when_container_tests_are_required(monkeypatch) -> None:
    monkeypatch.setattr(tooling, "detect_engine", lambda env: None)
    monkeypatch.delenv(container_support.REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no container engine"):
        container_support.find_engine()
    monkeypatch.setenv(container_support.REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_CONTAINER_TESTS=1"):
        container_support.find_engine()
    monkeypatch.setattr(tooling, "detect_engine", lambda env: "buildah")
    with pytest.raises(pytest.fail.Exception, match="cannot run them"):
        container_support.find_engine()


def test_run_command_binds_loopback_mounts_the_log_volume_and_hardens() -> None:
    engine = container_support.Engine("podman", {})
    command = container_support.run_command(engine, "img:1", "c1", 4321, Path("/logs"), {"API_KEY": "k"})
    assert command[command.index("-p") + 1] == "127.0.0.1:4321:3000"
    assert command[command.index("-v") + 1] == "/logs:/data/predictions"
    env_args = [command[i + 1] for i, part in enumerate(command) if part == "-e"]
    assert env_args == ["BENTOML_HOME=/tmp/bentoml", "API_KEY=k"] and command[-1] == "img:1"
    assert "--read-only" in command and command[command.index("--cap-drop") + 1] == "ALL"
    plain = container_support.run_command(engine, "img:1", "c1", 4321, Path("/logs"), {}, hardened=False)
    assert "--read-only" not in plain and "-e" not in plain
