"""The workspace's MongoDB server for FiftyOne, started by ``wb`` itself.

Why not let FiftyOne start it: FiftyOne's database service looks for *any*
running FiftyOne database process of the same user and attaches to it, whatever
its database folder. Two workspaces (or a test and a user's notebook) would then
share one database. Here each workspace runs its own ``mongod`` on its own folder,
bound to 127.0.0.1, and FiftyOne connects through ``FIFTYONE_DATABASE_URI``.

A second ``wb`` process on the same workspace attaches to the running server
(``mongod.json`` records its pid and port) instead of failing on MongoDB's lock.
The server dies with the process that started it (Linux parent-death signal), so
a killed ``wb review`` leaves no database behind.
"""
from __future__ import annotations

import ctypes
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ServiceError
from ..fsutil import atomic_write_json
from .environment import APP_ADDRESS, ReviewPaths, mongod_executable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """``preexec_fn``: the child gets ``sig`` when the process that started it dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def free_port(address: str = APP_ADDRESS) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def port_open(port: int, address: str = APP_ADDRESS, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


class ReviewDatabase:
    """A running ``mongod`` for one workspace: ``uri``; ``stop()`` stops it if we started it."""

    def __init__(self, paths: ReviewPaths, port: int, process: subprocess.Popen | None):
        self.paths = paths
        self.port = port
        self.process = process  # None when attached to another wb process's server

    @property
    def uri(self) -> str:
        return f"mongodb://{APP_ADDRESS}:{self.port}"

    @property
    def owned(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    # ---- lifecycle ------------------------------------------------------
    @classmethod
    def start(cls, paths: ReviewPaths, timeout: float = 60.0) -> "ReviewDatabase":
        """Attach to this workspace's running server, or start one."""
        paths.ensure()
        running = cls._running(paths)
        if running is not None:
            log.info("attaching to the review database already running on port %d", running)
            return cls(paths, running, None)
        mongod = mongod_executable()
        port = free_port()
        log_path = paths.log_dir / "mongod.log"
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        cmd = [str(mongod), "--dbpath", str(paths.database_dir), "--port", str(port),
               "--bind_ip", APP_ADDRESS, "--nounixsocket", "--logpath", str(log_path),
               "--logappend", "--wiredTigerCacheSizeGB", "0.25"]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        except OSError as exc:
            raise ServiceError(f"cannot run FiftyOne's MongoDB server {mongod}: {exc}") from None
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise ServiceError(cls._failure_message(paths, proc.returncode, stderr, log_path,
                                                         log_offset))
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise ServiceError(
                    f"the review database did not answer within {timeout:.0f} s "
                    f"(log: {log_path}); is the machine overloaded?")
            time.sleep(0.1)
        atomic_write_json(paths.database_state, {"pid": proc.pid, "port": port,
                                                 "dbpath": str(paths.database_dir)})
        log.info("review database started: pid %d, port %d", proc.pid, port)
        return cls(paths, port, proc)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server if this process started it (clean shutdown, then kill)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the review database did not stop in %.0f s; killing it", timeout)
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        try:
            state = json.loads(self.paths.database_state.read_text())
            if state.get("pid") == self.process.pid:
                self.paths.database_state.unlink()
        except (OSError, ValueError):
            pass
        self.process = None

    def __enter__(self) -> "ReviewDatabase":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- helpers --------------------------------------------------------
    @staticmethod
    def _running(paths: ReviewPaths) -> int | None:
        """The port of this workspace's live server, or None (stale state is removed)."""
        try:
            state = json.loads(paths.database_state.read_text())
            pid, port = int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        cmd = _cmdline(pid)
        alive = cmd is not None and str(paths.database_dir) in cmd
        if alive and port_open(port):
            return port
        try:
            paths.database_state.unlink()
        except OSError:
            pass
        return None

    @staticmethod
    def _failure_message(paths: ReviewPaths, code: int, stderr: str, log_path: Path,
                         log_offset: int = 0) -> str:
        """The first error MongoDB logged in this run, and what the user can do."""
        reasons = []
        try:
            with open(log_path, "rb") as fh:
                fh.seek(log_offset)
                lines = fh.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("s") in ("E", "F"):
                err = entry.get("attr", {}).get("error")
                detail = (err.get("errmsg") or err.get("codeName")) if isinstance(err, dict) else err
                reasons.append(" ".join(str(x) for x in (entry.get("msg"), detail) if x).strip())
        if not reasons and stderr.strip():
            reasons.append(" ".join(stderr.split()))
        reason = reasons[0] if reasons else f"exit code {code}"
        if any("DBPathInUse" in r or "lock" in r.lower() for r in reasons):
            hint = ("Another MongoDB server is using this folder: stop the other "
                    "`wb review` on this workspace.")
        else:
            hint = (f"The review dataset is rebuilt from the catalog, so you can move "
                    f"{paths.database_dir} aside and run `wb review` again.")
        return (f"the review database (MongoDB, {paths.database_dir}) failed to start: "
                f"{reason}. {hint} Log: {log_path}")
