"""Writing files whole or not at all, the space that takes, and what killed writers left.

A temporary file is named ``.<name>.<pid>-<random>.tmp`` next to its target, so the
next run can tell a dead writer's leftover (``remove_leftover_temps``) from a live one's.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from .errors import DiskFull

#: ``.<name>.<pid>-<random>.tmp``; the older ``.<name>.<random>.tmp`` has no PID
TEMP_RE = re.compile(r"^\..+\.(?:(\d+)-)?[A-Za-z0-9_]+\.tmp$")
#: a temporary file without a PID in its name is left over when it is this old
STALE_TEMP_S = 3600.0
#: what the file system keeps for itself and SQLite's journal: a write is refused when
#: it would leave less than this free
SPACE_MARGIN = 256 << 10


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    require_free_space(path.parent, len(data), f"writing {path.name}")
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and exc.filename is None:
            exc.filename = str(path)  # a write() error names no file: say which one
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, default=str) + "\n")


# ---- free space --------------------------------------------------------------------
def write_private(path: Path | str, text: str) -> None:
    """Write ``text`` to a file only its owner may read (mode 0600, also when it existed
    with wider permissions): credentials, tokens, database URLs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def free_bytes(folder: Path | str) -> int:
    """Bytes free for an unprivileged writer on the disk holding ``folder`` (or its
    nearest existing parent)."""
    return shutil.disk_usage(_existing(folder)).free


def _existing(folder: Path | str) -> Path:
    """``folder``, or its nearest parent that exists (a removed temporary folder's)."""
    p = Path(folder).absolute()
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def require_free_space(folder: Path | str, needed: int, what: str) -> None:
    """Raise ``DiskFull`` (naming ``folder``, ``needed`` and what is free) before a write
    of ``needed`` bytes that would not fit, keeping ``SPACE_MARGIN`` free."""
    free = free_bytes(folder)
    if needed + SPACE_MARGIN > free:
        raise DiskFull(folder, free, needed, what)


def disk_full(exc: BaseException, folder: Path | str) -> DiskFull | None:
    """``exc`` as a ``DiskFull`` when it is one in disguise: an ``OSError`` ENOSPC (or
    EDQUOT), SQLite's "database or disk is full", or its "disk I/O error" on a disk with
    less than ``SPACE_MARGIN`` free (what growing its shared-memory file on a disk with
    no room at all gives); None otherwise. ``folder``: where the write went when the
    error does not name a file (SQLite's never does)."""
    if isinstance(exc, DiskFull):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None) or 0
        full = code & 0xFF == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
        io_error = code & 0xFF == sqlite3.SQLITE_IOERR or "disk I/O error" in str(exc)
        if not full and not (io_error and free_bytes(folder) < SPACE_MARGIN):
            return None
        target = Path(folder)
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # shutil.copyfile names the source as filename and the destination as filename2
        named = exc.filename2 or exc.filename
        target = _existing(Path(os.fsdecode(named)).parent) if named else Path(folder)
    else:
        return None
    try:
        free = free_bytes(target)
    except OSError:
        free = None
    return DiskFull(target, free)


# ---- leftovers of killed writers ---------------------------------------------------
def remove_leftover_temps(folder: Path | str, recursive: bool = False) -> list[Path]:
    """Remove the temporary files (``TEMP_RE``) that writers killed mid-write left in
    ``folder``: their PID is gone (without a PID: ``STALE_TEMP_S`` old). Only names this
    module makes are touched, never any other file."""
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")
    removed = []
    for path in sorted(candidates):
        m = TEMP_RE.match(path.name)
        if m is None or not path.is_file() or path.is_symlink():
            continue
        try:
            stale = (
                not process_exists(int(m.group(1)))
                if m.group(1)
                else time.time() - path.stat().st_mtime > STALE_TEMP_S
            )
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:  # gone meanwhile
            continue
    return removed


def process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (``kill(pid, 0)``; a zombie counts as existing,
    the safe side for a lock's holder or a temporary file's writer).
    ``services.pid_alive`` builds on it and also tells zombies apart."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
