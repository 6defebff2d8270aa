"""Where the prediction log lives: one answer for the service, `make report`, `make monitor` and `make prune`.

`PREDICTION_LOG_URL` selects the store:
- `sqlite:///relative/predictions.db` or `sqlite:////absolute/predictions.db`: a SQLite file, with the JSON-lines
  mirror `predictions.jsonl` beside it (one machine; several workers of one server share it);
- `postgresql://user@host:port/database`: PostgreSQL, for many replicas. The password comes from
  `PREDICTION_LOG_PASSWORD`, or from the file named by `PREDICTION_LOG_PASSWORD_FILE` (a mounted Secret), or
  from libpq's own `PGPASSWORD` / `~/.pgpass`; a password written in the URL works but is never printed.
Without it, `PREDICTION_LOG_DIR` names a directory for the SQLite store, else the default below. The default does
not depend on the working directory: a built Bento serves from inside the BentoML store, where the log would
vanish with the Bento and the offline tools would never look.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

DB_NAME = "predictions.db"
JSONL_NAME = "predictions.jsonl"
SCHEMES = ("sqlite", "postgresql", "postgres")


class LocationError(ValueError):
    """PREDICTION_LOG_URL (or a --log-url) cannot be understood."""


def default_directory(env: Mapping[str, str] = os.environ) -> Path:
    """$XDG_DATA_HOME/prediction-service/prediction-log (~/.local/share by default)."""
    base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "prediction-service" / "prediction-log"


@dataclass(frozen=True)
class LogLocation:
    """A resolved store: `kind` "sqlite" (with `path`) or "postgresql" (with `conninfo`, password included)."""

    kind: str
    path: Path | None = None
    conninfo: str | None = None

    @property
    def jsonl_path(self) -> Path | None:
        """The JSON-lines mirror (SQLite only: a replica's local file would vanish with its pod)."""
        return self.path.with_name(JSONL_NAME) if self.path is not None else None

    @property
    def directory(self) -> Path | None:
        return self.path.parent if self.path is not None else None

    def __str__(self) -> str:
        """For logs and messages: the URL without its password."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        parts = urlsplit(self.conninfo or "")
        host = parts.hostname or ""
        netloc = f"{quote(parts.username)}@" if parts.username else ""
        netloc += f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def sqlite_in(directory: Path | str) -> LogLocation:
    return LogLocation("sqlite", path=(Path(directory) / DB_NAME).resolve())


def parse_url(url: str, password: str | None = None) -> LogLocation:
    """A store from its URL; `password` (from the environment) replaces none in the URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise LocationError(f"prediction log URL must start with sqlite:/// or postgresql://, got {url!r}")
    if scheme == "sqlite":
        path = unquote(url.strip()[len("sqlite:///"):]) if url.strip().startswith("sqlite:///") else ""
        if not path:
            raise LocationError(f"a SQLite prediction log URL names a file: sqlite:///path/{DB_NAME}, got {url!r}")
        return LogLocation("sqlite", path=Path(path).resolve())
    if not parts.hostname or not parts.path.strip("/"):
        shown = LogLocation("postgresql", conninfo=url)
        raise LocationError(f"a PostgreSQL prediction log URL names a host and a database, got {shown}")
    if password and not parts.password:
        netloc = f"{quote(parts.username or '')}:{quote(password, safe='')}@{parts.netloc.rsplit('@', 1)[-1]}"
        url = urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
    else:
        url = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    return LogLocation("postgresql", conninfo=url)


def password_from(env: Mapping[str, str]) -> str | None:
    if env.get("PREDICTION_LOG_PASSWORD"):
        return env["PREDICTION_LOG_PASSWORD"]
    if env.get("PREDICTION_LOG_PASSWORD_FILE"):
        try:
            return Path(env["PREDICTION_LOG_PASSWORD_FILE"]).read_text().strip()
        except OSError as exc:
            raise LocationError(f"PREDICTION_LOG_PASSWORD_FILE: {exc}") from None
    return None


def resolve(env: Mapping[str, str] = os.environ, url: str | None = None, directory: Path | None = None) -> LogLocation:
    """The log's location: an explicit `url` or `directory` (command-line options), else the environment."""
    if url:
        return parse_url(url, password_from(env))
    if directory is not None:
        return sqlite_in(directory)
    if env.get("PREDICTION_LOG_URL"):
        return parse_url(env["PREDICTION_LOG_URL"], password_from(env))
    return sqlite_in(env.get("PREDICTION_LOG_DIR") or default_directory(env))
