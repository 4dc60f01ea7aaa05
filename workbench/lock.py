"""One writer per workspace: an OS file lock on ``<workspace>/workbench.lock``.

The lock is ``fcntl.flock`` on that file, so the operating system releases it when the
holding process ends, however it ends (kill -9 included): there is never a stale lock
to remove by hand. The file's text (command, PID, start time) is written by the holder
for the message a second writer shows; it may be stale after a crash, and is only ever
read to say who holds the lock, never to decide whether it is held. The file itself is
never deleted (a process waiting on a deleted file would lock a different one).

The descriptor is close-on-exec (Python's default), so the servers a writer starts
(Label Studio, the demo's `wb serve`) do not keep the lock after it ends.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import WorkspaceError
from .fsutil import process_exists

LOCK_NAME = "workbench.lock"
#: seconds a second writer waits for the lock before it gives up (``WB_LOCK_WAIT``)
DEFAULT_WAIT_S = 5.0
WAIT_ENV = "WB_LOCK_WAIT"
_POLL_S = 0.1


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as the holder wrote it."""

    command: str
    pid: int
    started: str  # ISO 8601, UTC

    def describe(self) -> str:
        alive = process_exists(self.pid)
        since = self.started.replace("T", " ").replace("+00:00", " UTC")
        if not alive:  # it died after writing; the one holding the lock now has not yet
            return f"another wb process (the last holder on record, `{self.command}` pid {self.pid}, has ended)"
        return f"`{self.command}` (pid {self.pid}, started {since})"


class WorkspaceBusy(WorkspaceError):
    """Another process changes this workspace now."""

    def __init__(self, message: str, holder: Holder | None):
        super().__init__(message)
        self.holder = holder


def wait_seconds() -> float:
    """How long a writer waits for the lock: ``WB_LOCK_WAIT`` seconds, else the default."""
    value = os.environ.get(WAIT_ENV)
    if not value:
        return DEFAULT_WAIT_S
    try:
        return max(0.0, float(value))
    except ValueError:
        raise WorkspaceError(f"{WAIT_ENV}={value!r} is not a number of seconds") from None


def read_holder(path: Path) -> Holder | None:
    """The holder record in the lock file, or None (no file, empty, unreadable)."""
    try:
        data = json.loads(Path(path).read_text() or "null")
        return Holder(str(data["command"]), int(data["pid"]), str(data["started"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


class WorkspaceLock:
    """``with WorkspaceLock(path, "wb push"):`` holds the lock for the block.

    Not reentrant by itself (a second ``acquire`` in the same process on another
    instance waits like any other process); the CLI nests through one instance."""

    def __init__(self, path: Path | str, command: str):
        self.path = Path(path)
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self,
        wait: float | None = None,
        on_wait: Callable[[Holder | None, float], None] | None = None,
    ) -> None:
        """Take the lock, waiting up to ``wait`` seconds (default ``wait_seconds()``);
        ``on_wait(holder, wait)`` is called once when it must wait. Raises
        ``WorkspaceBusy`` naming the holder when it is still held then."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this lock")
        wait = wait_seconds() if wait is None else wait
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        told = False
        try:
            while not _try_flock(fd):
                if time.monotonic() >= deadline:
                    raise self._busy(wait)
                if not told and on_wait is not None:
                    on_wait(read_holder(self.path), wait)
                told = True
                time.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise
        record = {
            "command": self.command,
            "pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # nobody holds it now; a crash leaves the text, harmlessly
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _busy(self, wait: float) -> WorkspaceBusy:
        holder = read_holder(self.path)
        who = holder.describe() if holder else "another wb process"
        return WorkspaceBusy(
            f"the workspace {self.path.parent} is being changed by {who}; `{self.command}` "
            f"waited {wait:g} s and did nothing. One wb command changes a workspace at a "
            f"time: run `{self.command}` again when that one has finished (or set "
            f"{WAIT_ENV}=SECONDS to wait longer). Commands that only read (wb status, "
            "wb export, wb models) work meanwhile.",
            holder,
        )


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


SETTINGS_LOCK_NAME = ".workbench.toml.lock"


@contextmanager
def settings_lock(root: Path | str):
    """A short exclusive lock around one read-modify-write of ``workbench.toml``, so two
    processes that each change a setting (`wb ls start` writing the server's URL while a
    `wb push` records its new project) both keep their change. Separate from the
    workspace lock: a reader such as `wb ls start` takes only this one, for milliseconds.
    Blocking, released by the OS when the process ends."""
    fd = os.open(Path(root) / SETTINGS_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
