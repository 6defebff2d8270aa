"""A real OpenSSH server on loopback, as a DVC SSH remote for tests: Debian's sshd with a config of its own.

Nothing of the machine's SSH setup is used or changed: host key, client keys, authorized_keys, config and
pid file all live in one temp dir, the server listens on a free 127.0.0.1 port and lets in only the keys
the test authorized (`PasswordAuthentication no`). `StrictModes no` because a temp dir fails sshd's
ownership checks of the user's home. sshd runs in the foreground (`-D`) under ServerProcess, so `stop()`
ends it (and any session it forked) by pid even when the test failed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from scripts.server_process import ServerProcess, free_port

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without its privilege separation directory


def sshd_missing_reason() -> str | None:
    """Why this machine cannot run the test server, or None. `scripts/install-team-servers.sh` installs it."""
    if not SSHD.is_file() or shutil.which("ssh-keygen") is None:
        return "openssh-server is not installed (bash scripts/install-team-servers.sh)"
    return None


def require_sshd() -> None:
    """Skip without sshd, or fail where CI promises it (REQUIRE_TEAM_SERVERS=1)."""
    reason = sshd_missing_reason()
    if reason is None:
        return
    if os.environ.get("REQUIRE_TEAM_SERVERS") == "1":
        pytest.fail(f"REQUIRE_TEAM_SERVERS=1 but {reason}")
    pytest.skip(reason)


def generate_key(path: Path) -> Path:
    """A new passphrase-less ed25519 key pair at `path` (and `path`.pub)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, capture_output=True, timeout=60)
    return path


class SshServer:
    """sshd on 127.0.0.1:`port`, accepting the public keys of `authorize(...)`d key files, for `user`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = getpass.getuser()  # sshd not run as root can only log its own user in
        self.host_key = generate_key(directory / "host_ed25519")
        self.authorized_keys = directory / "authorized_keys"
        self.authorized_keys.touch()
        self.pid_file = directory / "sshd.pid"
        self.config = directory / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {self.pid_file}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "",
        ]))
        self.process: ServerProcess | None = None

    def authorize(self, key: Path) -> None:
        with self.authorized_keys.open("a") as fh:
            fh.write(key.with_suffix(".pub").read_text())

    def url(self, path: Path) -> str:
        """The DVC remote URL of an absolute path on this server."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 30) -> None:
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        # -D: stay in the foreground, so the pid ServerProcess holds is the one sshd writes to its PidFile;
        # -e: log to the output file.
        self.process = ServerProcess([str(SSHD), "-D", "-e", "-f", str(self.config)], cwd=self.directory,
                                     env=dict(os.environ), output=self.directory / "sshd.log", ready_port=self.port)
        self.process.wait_ready(timeout=timeout)
        deadline = time.monotonic() + timeout
        while not self.pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(self.pid_file.read_text())
        if pid != self.process.process.pid:
            raise RuntimeError(f"sshd wrote pid {pid}, started as {self.process.process.pid}")

    def log_text(self) -> str:
        return self.process.log_text() if self.process else ""

    def stop(self) -> None:
        """End sshd (the pid in its PidFile is the process ServerProcess started) and every session it forked."""
        if self.process is not None:
            self.process.stop(grace=10)
