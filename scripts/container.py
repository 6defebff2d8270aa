"""Build the Bento's container image with whichever container engine this machine has.

Why this module exists: `bentoml containerize` assumes a Docker engine and a reachable registry. CI machines here
have neither, so this wrapper

- picks the engine that is really there (docker only if its daemon answers, else podman, else buildah);
- writes the podman/buildah settings those machines need (runc, ulimits clamped to what the host allows)
  into a project-local file passed by environment, never into /etc;
- can build a registry-free base image from Debian packages (`base-image`) and trust the host's CA bundle
  during the build, for machines behind an intercepting TLS proxy;
- finishes the image with what BentoML's generated Dockerfile lacks: a numeric non-root USER (so Kubernetes'
  runAsNonRoot can verify it), a prediction-log volume and a HEALTHCHECK.

CLI (run with the project's virtualenv python):

    python scripts/container.py engine                  # the engine that would be used
    python scripts/container.py env                     # `export CONTAINERS_CONF=...` for running podman by hand
    python scripts/container.py base-image [--rebuild]  # localhost/bento-base:bookworm-py311, host's apt mirror
    python scripts/container.py build --name NAME [--local-base | --base-image IMAGE] [--trust-host-ca]

Environment: CONTAINER_ENGINE (docker|podman|buildah) overrides detection; CONTAINER_LOCAL_BASE=1 makes
`--local-base` the default; CONTAINER_STORAGE_ROOT gives podman/buildah a separate image store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_ROOT / ".containers"

ENGINES = ("docker", "podman", "buildah")
LOCAL_BASE_IMAGE = "localhost/bento-base:bookworm-py311"
DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, the project's Python
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates", "curl")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# The image contract shared with deploy/ and tests/container_support.py.
SERVICE_PORT = 3000
PREDICTION_LOG_DIR = "/data/predictions"
BENTO_UID = 1034  # the `bentoml` user of BentoML's generated Dockerfile
# What the image holds (podman, squashed): 563 MB before the compiled champion; ONNX Runtime adds about
# 70 MB and psycopg's binary (libpq, for the PostgreSQL prediction log) about 12 MB: 664-673 MB measured.
# The target guards against BentoML's default build tools (+650 MB of compilers), not against a library.
IMAGE_SIZE_TARGET_MB = 700

# BentoML's default install step for distro "debian": +650 MB of compilers the service never uses.
BENTOML_BUILD_TOOLS_MARKER = "build-essential"


class ContainerError(RuntimeError):
    """A failure the user can act on; the CLI prints it without a traceback."""


# --------------------------------------------------------------------------------------------------- engine


def docker_daemon_answers(timeout: float = 15.0) -> bool:
    """True when `docker info` reaches a daemon: the docker CLI alone (as on the CI machines) cannot build."""
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def detect_engine(
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
    docker_answers: Callable[[], bool] = docker_daemon_answers,
) -> str | None:
    """The engine to build with: CONTAINER_ENGINE if set, else docker with a live daemon, else podman, else buildah.

    Returns None when there is none, so callers decide whether that is a skip or an error.
    """
    override = env.get("CONTAINER_ENGINE", "").strip()
    if override:
        if override not in ENGINES:
            raise ContainerError(f"CONTAINER_ENGINE={override!r}: expected one of {', '.join(ENGINES)}")
        if which(override) is None:
            raise ContainerError(f"CONTAINER_ENGINE={override} but {override} is not on PATH")
        return override
    if which("docker") and docker_answers():
        return "docker"
    for engine in ("podman", "buildah"):
        if which(engine):
            return engine
    return None


def require_engine(env: Mapping[str, str]) -> str:
    engine = detect_engine(env)
    if engine is None:
        raise ContainerError(
            "no container engine: docker (with a running daemon), podman or buildah is needed; "
            "on Debian: bash scripts/install-container-tools.sh"
        )
    return engine


# --------------------------------------------------------------------------------------------------- engine config


def host_limits() -> tuple[int, int]:
    """(nofile, nproc) the host lets a process set: without CAP_SYS_RESOURCE podman's defaults fail in setrlimit."""
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text().strip())
    nofile = 1048576 if nofile_hard == resource.RLIM_INFINITY else min(nofile_hard, 1048576)
    nproc = pid_max if nproc_hard == resource.RLIM_INFINITY else min(nproc_hard, pid_max)
    return nofile, nproc


def containers_conf_text(nofile: int, nproc: int, runtime: str | None) -> str:
    """containers.conf for podman and buildah: clamped ulimits, and runc where crun fails on hybrid cgroups."""
    lines = [
        "# Written by scripts/container.py; passed as CONTAINERS_CONF. Regenerated on every run.",
        "[containers]",
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]',
    ]
    if runtime:
        lines += ["[engine]", f'runtime = "{runtime}"']
    return "\n".join(lines) + "\n"


def storage_conf_text(root: Path) -> str:
    """storage.conf with its own graphroot: keeps throwaway images apart from the machine's main store."""
    return (
        "# Written by scripts/container.py; passed as CONTAINERS_STORAGE_CONF.\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
    )


def engine_environment(engine: str, base_env: Mapping[str, str], state_dir: Path = STATE_DIR) -> dict[str, str]:
    """The environment every engine command (and `bentoml containerize`) runs with.

    Docker needs nothing. For podman/buildah the config files are rewritten each time: limits differ per machine.
    """
    env = dict(base_env)
    if engine == "docker":
        return env
    state_dir.mkdir(parents=True, exist_ok=True)
    nofile, nproc = host_limits()
    runtime = "runc" if shutil.which("runc") else None
    conf = state_dir / "containers.conf"
    conf.write_text(containers_conf_text(nofile, nproc, runtime))
    env["CONTAINERS_CONF"] = str(conf)
    storage_root = base_env.get("CONTAINER_STORAGE_ROOT", "").strip()
    if storage_root:
        storage = state_dir / "storage.conf"
        storage.write_text(storage_conf_text(Path(storage_root).resolve()))
        env["CONTAINERS_STORAGE_CONF"] = str(storage)
    return env


def shell_exports(env: Mapping[str, str]) -> str:
    """`export` lines for the variables this module sets, for running the engine by hand."""
    names = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")
    return "".join(f"export {name}={env[name]}\n" for name in names if name in env)


# --------------------------------------------------------------------------------------------------- engine commands


def run(cmd: Sequence[str], env: Mapping[str, str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, echoing it first so a CI log shows exactly what was executed."""
    print("+", " ".join(str(part) for part in cmd), flush=True)
    return subprocess.run([str(part) for part in cmd], env=dict(env), check=True, **kwargs)


def image_exists(engine: str, image: str, env: Mapping[str, str]) -> bool:
    cmd = [engine, "image", "inspect", image]
    if engine == "buildah":
        cmd = ["buildah", "inspect", "--type", "image", image]
    return subprocess.run(cmd, env=dict(env), capture_output=True, check=False).returncode == 0


def parse_human_size(text: str) -> int:
    """Bytes from the decimal sizes engines print ("418 MB", "1.13 GB"): buildah reports nothing more exact."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kMGT]?B)\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    units = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    return round(float(match.group(1)) * units[match.group(2)])


def image_size_bytes(engine: str, image: str, env: Mapping[str, str]) -> int:
    """Uncompressed size of the image, as `images` reports it."""
    if engine == "buildah":
        out = subprocess.run(
            ["buildah", "images", "--json", image], env=dict(env), capture_output=True, text=True, check=True
        ).stdout
        return parse_human_size(json.loads(out)[0]["size"])
    out = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", image], env=dict(env), capture_output=True, text=True,
        check=True,
    ).stdout
    return int(out.strip())


def build_command(engine: str, context: Path, tags: Sequence[str], docker_format: bool = False,
                  squash: bool = False) -> list[str]:
    """A plain Containerfile build; `--format docker` keeps HEALTHCHECK, which the OCI format drops.

    `squash` flattens the image into one layer (podman, buildah), so files deleted by the last layer
    really leave the image; docker's builder cannot squash without experimental mode.
    """
    cmd = ["buildah", "build"] if engine == "buildah" else [engine, "build"]
    if docker_format and engine != "docker":
        cmd += ["--format", "docker"]
    if squash and engine == "podman":
        cmd += ["--squash-all"]
    elif squash and engine == "buildah":
        cmd += ["--squash"]
    for tag in tags:
        cmd += ["-t", tag]
    return [*cmd, str(context)]


# --------------------------------------------------------------------------------------------------- base image


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]


def parse_apt_sources(text: str) -> list[AptSource]:
    """Debian mirrors from a sources.list (one-line) or .sources (deb822) file; deb-src and comments ignored."""
    sources: list[AptSource] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["deb"]:
            words = [w for w in words[1:] if not (w.startswith("[") or w.endswith("]") or "=" in w)]
            if len(words) >= 2:
                sources.append(AptSource(words[0], (words[1],)))
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match:
                fields[match.group(1).lower()] = match.group(2)
        if "uris" in fields and "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            suites = tuple(fields.get("suites", "").split())
            sources.extend(AptSource(uri, suites) for uri in fields["uris"].split())
    return sources


def debian_mirror(sources: Iterable[AptSource], suite: str = DEBIAN_SUITE) -> str:
    """The first mirror that serves `suite` itself (not -security/-updates): debootstrap needs the main archive."""
    for source in sources:
        if suite in source.suites:
            return source.uri
    return DEFAULT_DEBIAN_MIRROR


def host_apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    files += sorted((apt_dir / "sources.list.d").glob("*.sources"))
    return [source for path in files if path.is_file() for source in parse_apt_sources(path.read_text())]


def debootstrap_command(rootfs: Path, mirror: str, suite: str = DEBIAN_SUITE) -> list[str]:
    packages = ",".join(BASE_IMAGE_PACKAGES)
    return ["debootstrap", "--variant=minbase", f"--include={packages}", suite, str(rootfs), mirror]


def base_containerfile() -> str:
    """FROM scratch + the rootfs tarball: one recipe docker, podman and buildah all build (buildah has no import).

    PIP_BREAK_SYSTEM_PACKAGES lets BentoML's `pip install uv` pass Debian's PEP 668 marker; SSL_CERT_FILE makes
    uv and pip use the system bundle, which is where a mounted host CA bundle lands.
    """
    return (
        "FROM scratch\n"
        "ADD rootfs.tar /\n"
        "ENV LANG=C.UTF-8 PIP_BREAK_SYSTEM_PACKAGES=1 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\n"
        'CMD ["/bin/bash"]\n'
    )


def build_base_image(engine: str, env: Mapping[str, str], tag: str = LOCAL_BASE_IMAGE, rebuild: bool = False) -> str:
    """Build (or reuse) a Debian bookworm + python3 base image with no registry: debootstrap, tar, FROM scratch.

    Reused when present: it takes 1-2 minutes and only changes with Debian's point releases. Built per machine
    on purpose: nothing of the host's TLS setup goes into it, so it never carries a stale proxy CA.
    """
    if not rebuild and image_exists(engine, tag, env):
        print(f"base image {tag} already present (--rebuild to rebuild it)")
        return tag
    if shutil.which("debootstrap") is None:
        raise ContainerError("debootstrap is not installed: bash scripts/install-container-tools.sh")
    if os.geteuid() != 0:
        raise ContainerError("building the base image needs root (debootstrap creates device nodes and chroots)")
    mirror = debian_mirror(host_apt_sources())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bento-base-", dir="/var/tmp") as workdir:
        context = Path(workdir)
        rootfs = context / "rootfs"
        try:
            run(debootstrap_command(rootfs, mirror), env, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            log = rootfs / "debootstrap" / "debootstrap.log"
            print(log.read_text()[-3000:] if log.is_file() else "(no debootstrap.log)", file=sys.stderr)
            raise
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        # documentation, man pages and translations: 52 MB no server reads
        trimmed = [f"--exclude=./usr/share/{d}/*" for d in ("doc", "man", "locale", "info")]
        run(["tar", "-C", rootfs, "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", *trimmed,
             "-cf", context / "rootfs.tar", "."], env)
        shutil.rmtree(rootfs)
        (context / "Containerfile").write_text(base_containerfile())
        run(build_command(engine, context, [tag]), env)
    print(f"base image {tag} built in {time.monotonic() - started:.0f} s from {mirror}")
    return tag


# --------------------------------------------------------------------------------------------------- Bento image


def resolve_bento(bento: str | None, name: str | None) -> tuple[str, str]:
    """(name, version) of the Bento to containerize: an explicit tag, or the latest built Bento of `name`."""
    import bentoml  # lazy: 1-2 s of imports that `engine` and `env` do not need

    reference = bento or f"{name}:latest"
    try:
        tag = bentoml.bentos.get(reference).tag
    except bentoml.exceptions.NotFound as error:
        raise ContainerError(f"no Bento {reference} in {bentoml_home()}: build it first (bentoml build)") from error
    return tag.name, tag.version


def bento_image_commands(bento_tag: str) -> list[str]:
    """The RUN commands the Bento's frozen image spec will execute (empty for v1 Bentos)."""
    import bentoml

    image = getattr(bentoml.bentos.get(bento_tag).info, "image", None)
    return list(getattr(image, "commands", None) or [])


def bentoml_home() -> str:
    return os.environ.get("BENTOML_HOME", str(Path.home() / "bentoml"))


def containerize_command(
    engine: str,
    bento_tag: str,
    image_tag: str,
    iidfile: Path,
    base_image: str | None = None,
    trust_host_ca: bool = False,
) -> list[str]:
    """`bentoml containerize` with the engine as backend.

    --from replaces the FROM of BentoML's generated Dockerfile (podman/buildah only); the CA bundle is a
    read-only mount during RUN steps, never a layer. --iidfile is written only when an image was built: the
    tag alone could be a leftover of an earlier build.
    """
    if engine == "docker" and (base_image or trust_host_ca):
        raise ContainerError(
            "docker build can neither replace the FROM image nor mount the host CA bundle into RUN steps: "
            "use podman/buildah (CONTAINER_ENGINE=podman), or set the base image in the Bento's image spec"
        )
    cmd = [sys.executable, "-m", "bentoml", "containerize", "--backend", engine, "-t", image_tag]
    cmd += ["--opt", f"iidfile={iidfile}"]
    if base_image:
        cmd += ["--opt", f"from={base_image}"]
    if trust_host_ca:
        cmd += ["--opt", f"volume={HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    return [*cmd, bento_tag]


def finishing_containerfile(image: str, log_dir: str = PREDICTION_LOG_DIR, port: int = SERVICE_PORT) -> str:
    """One thin layer over BentoML's image for what its generated Dockerfile cannot express.

    BentoML's `USER bentoml` is a name, which Kubernetes' runAsNonRoot cannot check: the same user by number.
    The log directory is created owned by that user and declared a VOLUME, so logs survive the
    container; the HEALTHCHECK probes /readyz with the image's own python (the image has no curl).
    The test suites that numpy, scipy, pandas and scikit-learn ship inside their wheels (about 110 MB)
    are never imported by a server, nor is uv (BentoML's installer, 38 MB): removed, which shrinks the
    image when the build is squashed.
    """
    probe = (
        "import os, urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BENTOML_PORT', '{port}') + '/readyz', timeout=4)"
    )
    return (
        f"FROM {image}\n"
        "USER root\n"
        f"RUN mkdir -p {log_dir} && chown {BENTO_UID}:{BENTO_UID} {log_dir} "
        "&& find /app/.venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + "
        "&& rm -f /usr/local/bin/uv /usr/local/bin/uvx\n"
        f"USER {BENTO_UID}:{BENTO_UID}\n"
        f"ENV PREDICTION_LOG_DIR={log_dir}\n"
        f'VOLUME ["{log_dir}"]\n'
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 "
        f"CMD {json.dumps(['python', '-c', probe])}\n"
    )


@dataclass(frozen=True)
class BuiltImage:
    tags: tuple[str, ...]
    size_bytes: int
    containerize_seconds: float

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def build_bento_image(
    engine: str,
    env: Mapping[str, str],
    bento_name: str,
    bento_version: str,
    base_image: str | None = None,
    trust_host_ca: bool = False,
    image_name: str | None = None,
) -> BuiltImage:
    """Containerize the Bento, add the finishing layer, tag the result `name:version` and `name:latest`."""
    image_name = image_name or bento_name
    tags = (f"{image_name}:{bento_version}", f"{image_name}:latest")
    bento_tag = f"{bento_name}:{bento_version}"
    if any(BENTOML_BUILD_TOOLS_MARKER in command for command in bento_image_commands(bento_tag)):
        print(
            f"warning: {bento_tag} installs {BENTOML_BUILD_TOOLS_MARKER} + git (BentoML's default for distro 'debian', "
            "about +650 MB); an image spec with an unknown distro skips it (see scripts/container.py docs)",
            file=sys.stderr,
        )
    intermediate = f"{image_name}:containerized"
    with tempfile.TemporaryDirectory(prefix="bento-image-") as workdir:
        iidfile = Path(workdir) / "iid"
        started = time.monotonic()
        run(containerize_command(engine, bento_tag, intermediate, iidfile, base_image, trust_host_ca), env)
        containerize_seconds = time.monotonic() - started
        if not iidfile.is_file() or not iidfile.read_text().strip():
            raise ContainerError(f"bentoml containerize did not build {bento_tag}: see the build output above")
        context = Path(workdir) / "finish"
        context.mkdir()
        (context / "Containerfile").write_text(finishing_containerfile(intermediate))
        run(build_command(engine, context, tags, docker_format=True, squash=True), env)
    remove_command = ["buildah", "rmi"] if engine == "buildah" else [engine, "rmi"]
    subprocess.run([*remove_command, intermediate], env=dict(env), capture_output=True, check=False)
    return BuiltImage(tags, image_size_bytes(engine, tags[0], env), containerize_seconds)


# --------------------------------------------------------------------------------------------------- CLI


def env_flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("engine", help="print the engine that would be used")
    commands.add_parser("env", help="print export lines for running podman/buildah by hand")
    base = commands.add_parser("base-image", help=f"build {LOCAL_BASE_IMAGE} from Debian packages (no registry)")
    base.add_argument("--tag", default=LOCAL_BASE_IMAGE)
    base.add_argument("--rebuild", action="store_true", help="rebuild even if the image exists")
    build = commands.add_parser("build", help="containerize a Bento; prints the image tags and size")
    which = build.add_mutually_exclusive_group(required=True)
    which.add_argument("--bento", help="Bento tag name:version")
    which.add_argument("--name", help="use the latest built Bento of this name")
    build.add_argument("--image-name", help="image repository name (default: the Bento's name)")
    bases = build.add_mutually_exclusive_group()
    bases.add_argument("--base-image", help="replace the Bento's base image (podman/buildah); default: keep it")
    bases.add_argument(
        "--local-base",
        action="store_true",
        default=env_flag(env, "CONTAINER_LOCAL_BASE"),
        help=f"build/reuse {LOCAL_BASE_IMAGE} and build on it, trusting the host CA bundle "
        "(for machines with no registry; default from CONTAINER_LOCAL_BASE)",
    )
    build.add_argument(
        "--trust-host-ca",
        action="store_true",
        default=env_flag(env, "CONTAINER_TRUST_HOST_CA"),
        help=f"mount {HOST_CA_BUNDLE} read-only into the build (TLS-intercepting proxies)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    args = parse_args(sys.argv[1:] if argv is None else argv, env)
    try:
        if args.command == "engine":
            engine = detect_engine(env)
            print(engine or "none")
            return 0 if engine else 1
        engine = require_engine(env)
        engine_env = engine_environment(engine, env)
        if args.command == "env":
            print(shell_exports(engine_env), end="")
        elif args.command == "base-image":
            build_base_image(engine, engine_env, args.tag, args.rebuild)
        elif args.command == "build":
            base_image, trust_host_ca = args.base_image, args.trust_host_ca
            if args.local_base:
                base_image = build_base_image(engine, engine_env)
                trust_host_ca = True
            name, version = resolve_bento(args.bento, args.name)
            built = build_bento_image(engine, engine_env, name, version, base_image, trust_host_ca, args.image_name)
            verdict = "ok" if built.size_mb < IMAGE_SIZE_TARGET_MB else f"over the {IMAGE_SIZE_TARGET_MB} MB target"
            print(f"image: {' '.join(built.tags)}")
            print("deploy exactly this one: cd deploy && kustomize edit set image "
                  f"prediction-service=<registry>/{built.tags[0]}")
            print(f"size: {built.size_mb:.0f} MB ({verdict}); containerize took {built.containerize_seconds:.0f} s")
    except ContainerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"error: command failed with exit code {error.returncode}: {' '.join(map(str, error.cmd))}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
