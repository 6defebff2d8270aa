"""The two files of the prediction log as the writer holds them open, and how each notices it was removed.

Both are shared by every worker of a server. `JsonlFile` appends a group's lines all-or-nothing
(under an flock, a short write is finished or undone), so a failed group leaves no partial line.
`Database` is the SQLite connection plus a "pin": a plain descriptor on the same file, with a shared
flock, by which a worker notices that the path no longer names its file (deleted or replaced) and
by which all workers agree on when a new database may be created at the path: only once every
worker has closed the old one, because SQLite names its -wal and -shm files after the path, so an
old connection that closes last would delete the new database's write-ahead log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prediction_log.schema import migrate_sqlite

Identity = tuple[int, int]  # (st_dev, st_ino)


def moved(path: Path, identity: Identity | None) -> str | None:
    """'deleted' if nothing is at `path`, 'replaced' if another file is, None if it is still the file we hold."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "deleted"
    return None if (st.st_dev, st.st_ino) == identity else "replaced"


def _identity(fd: int) -> Identity:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in WAL mode that waits for other workers' write locks instead of failing."""
    connection = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


class JsonlFile:
    """predictions.jsonl, opened for appending."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._identity: Identity | None = None

    def open(self) -> None:
        self.close()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._identity = _identity(self._fd)

    def moved(self) -> str | None:
        return moved(self.path, self._identity)

    def rotated(self) -> bool:
        """Whether the file we hold is now the newest rotated one (`<path>.1`): renamed, not lost."""
        return moved(Path(f"{self.path}.1"), self._identity) is None

    def size(self) -> int:
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    @contextlib.contextmanager
    def locked(self) -> Iterator[int]:
        """The descriptor, under the exclusive flock every worker takes to append or rotate."""
        assert self._fd is not None
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def appending(self, lines: list[str]) -> Iterator[Callable[[list[str]], None]]:
        """Append `lines` at enter; if the write or the body fails, cut the file back to where it was.

        The flock keeps other workers' groups out of the way while a group may still be undone. A file
        rotated by another worker while we waited for the lock is followed first, so no line goes to it.
        The body gets a function that appends more lines under the same lock and undo: for a caller that
        knows its lines only once it holds the database's write lock, which must be taken after this one
        (every writer takes the flock first, so no two wait on each other)."""
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        if self.moved() is not None and self.rotated():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        fd = self._fd

        def write(more: list[str]) -> None:
            data = memoryview(("\n".join(more) + "\n").encode()) if more else memoryview(b"")
            while data:
                written = os.write(fd, data)
                if written <= 0:
                    raise OSError(f"short write to {self.path}: 0 of {len(data)} bytes")
                data = data[written:]

        try:
            start = os.fstat(fd).st_size
            try:
                write(lines)
                yield write
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class Database:
    """predictions.db: a SQLite connection, and a pinned descriptor with a shared flock on the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None
        self._pin: int | None = None
        self._identity: Identity | None = None
        self.reopen_pending = False  # the path stopped naming our file and a reopen has not succeeded yet

    def open(self) -> None:
        """Connect (creating the file and tables if needed) and pin the file."""
        connection = connect(self.path)
        try:
            migrate_sqlite(connection)
            pin = os.open(self.path, os.O_RDONLY)
        except BaseException:
            connection.close()
            raise
        fcntl.flock(pin, fcntl.LOCK_SH)
        self.connection, self._pin, self._identity = connection, pin, _identity(pin)

    def moved(self) -> str | None:
        return moved(self.path, self._identity)

    def reconnect(self) -> None:
        """A new connection to the same file (after an error that may have left the old one unusable)."""
        self._close_connection()
        connection = connect(self.path)
        self.connection = connection

    @contextlib.contextmanager
    def transaction(self, commit: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK if not `commit`: a test of the tables); on failure the
        transaction is rolled back if SQLite has not already done so, and the original error is raised
        (never "cannot rollback - no transaction is active")."""
        connection = self.connection
        assert connection is not None
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def reopen(self, wait_s: float) -> bool:
        """After the path stopped naming our file: close it, wait until every other worker has closed it too
        (the exclusive flock on the old file), then open whatever the path names, creating a new database if
        no other worker has. Returns False (database closed) if the others did not let go within `wait_s`."""
        self._close_connection()
        old_pin, self._pin = self._pin, None
        self.reopen_pending = True
        if old_pin is not None and not _lock_exclusive(old_pin, wait_s):
            self._pin = old_pin
            return False
        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                for suffix in ("-wal", "-shm"):  # the old database's, now unused by anyone
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.open()
        finally:
            if old_pin is not None:
                os.close(old_pin)
        self.reopen_pending = False
        return True

    def _close_connection(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self.connection.close()
            self.connection = None

    def close(self) -> None:
        self._close_connection()
        if self._pin is not None:
            os.close(self._pin)
            self._pin = None


def _lock_exclusive(fd: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
