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

import json
import logging
import re
from pathlib import Path
from typing import Self

from ..errors import ServiceError
from ..services import (
    ManagedProcess,
    free_port,
    port_open,
    read_pid_file,
    remove_pid_file,
    spawn,
    write_pid_file,
)
from .environment import APP_ADDRESS, ReviewPaths, mongod_executable

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0  # seconds for a clean shutdown before SIGKILL
SHARED_TIMEOUT = 10.0  # seconds for a shared database to answer


def _redact(uri: str) -> str:
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", uri)


def database_where(uri: str) -> str:
    """host:port[,host:port] of a MongoDB URI, for messages (never the password)."""
    rest = uri.split("://", 1)[-1]
    hosts = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return hosts or _redact(uri)


class ReviewDatabase:
    """A running ``mongod`` for one workspace: ``uri``; ``stop()`` stops it if we started it."""

    def __init__(
        self,
        paths: ReviewPaths,
        port: int | None,
        process: ManagedProcess | None,
        shared_uri: str | None = None,
    ):
        self.paths = paths
        self.port = port
        self.process = process  # None when attached to another wb process's server
        self.shared_uri = shared_uri  # [review] database_uri: a MongoDB wb does not run

    @property
    def uri(self) -> str:
        return self.shared_uri or f"mongodb://{APP_ADDRESS}:{self.port}"

    @property
    def owned(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    # ---- lifecycle ------------------------------------------------------
    @classmethod
    def connect(cls, paths: ReviewPaths, uri: str, timeout: float = SHARED_TIMEOUT) -> Self:
        """Use a MongoDB that someone else runs (``[review] database_uri``): check that
        it answers and accepts the login, start nothing. Each workspace's dataset has a
        name of its own (``dataset_name``), so several workspaces can share it."""
        import pymongo
        from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError

        paths.ensure()
        where = database_where(uri)
        fix = (
            "fix [review] database_uri in workbench.toml, or remove it to let wb run "
            "its own database"
        )
        try:
            client = pymongo.MongoClient(
                uri, serverSelectionTimeoutMS=int(timeout * 1000), connect=False
            )
        except (InvalidURI, ConfigurationError, ValueError) as exc:
            raise ServiceError(
                f"[review] database_uri {_redact(uri)!r} is not a MongoDB URI ({exc}); {fix}"
            ) from None
        try:
            client.admin.command("ping")
            client.list_database_names()  # the login is checked here, not by ping
        except OperationFailure as exc:
            raise ServiceError(
                f"the shared review database at {where} refused the login: "
                f"{exc.details.get('errmsg') if exc.details else exc}; {fix}"
            ) from None
        except PyMongoError as exc:
            reason = str(exc).split(",", 1)[0].split(" (configure", 1)[0]
            raise ServiceError(
                f"the shared review database at {where} does not answer within "
                f"{timeout:.0f} s ({reason}): start it, or {fix}"
            ) from None
        finally:
            client.close()
        log.info("using the shared review database at %s", where)
        return cls(paths, None, None, shared_uri=uri)

    @classmethod
    def start(cls, paths: ReviewPaths, timeout: float = 60.0) -> Self:
        """Attach to this workspace's running server, or start one."""
        paths.ensure()
        running = cls._running(paths)
        if running is not None:
            log.info("attaching to the review database already running on port %d", running)
            return cls(paths, running, None)
        mongod = mongod_executable()
        port = free_port(APP_ADDRESS)
        log_path = paths.log_dir / "mongod.log"
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        cmd = [
            str(mongod),
            "--dbpath",
            str(paths.database_dir),
            "--port",
            str(port),
            "--bind_ip",
            APP_ADDRESS,
            "--nounixsocket",
            "--logpath",
            str(log_path),
            "--logappend",
            "--wiredTigerCacheSizeGB",
            "0.25",
        ]
        try:
            # what mongod prints before its log is open (bad options) lands in the log too
            server = spawn(
                "the review database",
                cmd,
                log_path,
                die_with_parent=True,
                stop_timeout=STOP_TIMEOUT,
            )
        except OSError as exc:
            raise ServiceError(f"cannot run FiftyOne's MongoDB server {mongod}: {exc}") from None
        server.wait_healthy(
            lambda: port_open(port, APP_ADDRESS),
            timeout,
            interval=0.1,
            hint=" (is the machine overloaded?)",
            exit_message=lambda code: cls._failure_message(paths, code, log_path, log_offset),
        )
        write_pid_file(
            paths.database_state,
            {"pid": server.pid, "port": port, "dbpath": str(paths.database_dir)},
        )
        log.info("review database started: pid %d, port %d", server.pid, port)
        return cls(paths, port, server)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server if this process started it (clean shutdown, then kill)."""
        if self.process is None:
            return
        self.process.stop(timeout)
        remove_pid_file(self.paths.database_state, pid=self.process.pid)
        self.process = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- helpers --------------------------------------------------------
    @staticmethod
    def _running(paths: ReviewPaths) -> int | None:
        """The port of this workspace's live server, or None (stale state is removed)."""
        record = read_pid_file(
            paths.database_state, is_ours=lambda argv: str(paths.database_dir) in argv
        )
        port = record.get("port") if record else None
        if isinstance(port, int) and port_open(port, APP_ADDRESS):
            return port
        remove_pid_file(paths.database_state)
        return None

    @staticmethod
    def _failure_message(paths: ReviewPaths, code: int, log_path: Path, log_offset: int = 0) -> str:
        """The first error MongoDB logged in this run, and what the user can do."""
        reasons, printed = [], []
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
                entry = None
            if not isinstance(entry, dict):  # not MongoDB's JSON log: what it printed itself
                printed.append(line)
                continue
            if entry.get("s") in ("E", "F"):
                err = entry.get("attr", {}).get("error")
                detail = (
                    (err.get("errmsg") or err.get("codeName")) if isinstance(err, dict) else err
                )
                reasons.append(" ".join(str(x) for x in (entry.get("msg"), detail) if x).strip())
        if not reasons and "".join(printed).strip():
            reasons.append(" ".join(" ".join(printed).split()))
        reason = reasons[0] if reasons else f"exit code {code}"
        if any("DBPathInUse" in r or "lock" in r.lower() for r in reasons):
            hint = (
                "Another MongoDB server is using this folder: stop the other "
                "`wb review` on this workspace."
            )
        else:
            hint = (
                f"The review dataset is rebuilt from the catalog, so you can move "
                f"{paths.database_dir} aside and run `wb review` again."
            )
        return (
            f"the review database (MongoDB, {paths.database_dir}) failed to start: "
            f"{reason}. {hint} Log: {log_path}"
        )
