"""PostgreSQL under Label Studio: the database URL, a connection check before Label
Studio starts, and a local PostgreSQL server for one workspace (`wb ls db start`).

Label Studio 1.23 reads its PostgreSQL settings from ``DJANGO_DB=default`` and
``POSTGRE_NAME``/``USER``/``PASSWORD``/``HOST``/``PORT`` (its ``core/settings/base.py``);
it talks to the server through psycopg 3 (``psycopg[binary]``), which ``pip install
label-studio==1.23.2`` brings into its own environment (``.venv-ls``). ``wb`` checks the URL with that same driver before it starts Label Studio, so
an unreachable server or a wrong password is one line naming host:port, and nothing
is left half-started.

The local server is Debian's ``postgresql`` package (``/usr/lib/postgresql/N/bin``):
``initdb`` into ``services/postgres/`` (or ``--data-dir``) with a superuser ``wb``
whose generated password lives in ``services/postgres.auth.json`` (mode 0600), then
``postgres`` bound to 127.0.0.1 only, TCP only (no Unix socket), stopped by its PID.
PostgreSQL refuses to run as root: when ``wb`` runs as root, the server runs as the
``postgres`` user the package created, and its data folder belongs to that user.

Files in ``services/``:

- ``postgres.json``: the running server (pid, port, data folder, log);
- ``postgres.auth.json`` (mode 0600): its superuser's password;
- ``postgres.log``: the server's output;
- ``labelstudio.database.json`` (mode 0600): the full URL given to
  ``wb ls start --database`` (``[labelstudio] database`` keeps it without the password).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from ..errors import ServiceError, WorkbenchError
from ..fsutil import write_private
from ..services import (
    LOCALHOST,
    as_user,
    port_is_free,
    port_open,
    read_pid_file,
    remove_pid_file,
    spawn,
    write_pid_file,
)
from ..services import stop as stop_process

log = logging.getLogger(__name__)

DEFAULT_PORT = 5433  # not 5432: a system cluster of the same package may hold that
SUPERUSER = "wb"
DATABASE = "labelstudio"
RUN_AS = "postgres"  # the user Debian's package creates; the server's user under root
STATE_NAME = "postgres.json"
AUTH_NAME = "postgres.auth.json"
LOG_NAME = "postgres.log"
DATA_NAME = "postgres"
URL_NAME = "labelstudio.database.json"
STOP_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5  # seconds, for the check before Label Studio starts
INSTALL_HINT = "apt-get install -y postgresql (Debian's package; ./run setup does it as root)"
SQLITE = "sqlite"
LOCAL = "local"
SCHEMES = ("postgresql", "postgres")


class DatabaseUrlError(WorkbenchError):
    """A --database value that is not a PostgreSQL URL."""


class DatabaseSwitch(WorkbenchError):
    """Label Studio would start on another database than the one holding this
    workspace's projects."""


class PostgresNotInstalled(ServiceError):
    """No PostgreSQL server programs here."""


class DatabaseUnreachable(ServiceError):
    """Label Studio's PostgreSQL does not answer, or refuses the credentials."""


# ---- the URL ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseUrl:
    """``postgresql://user:password@host:port/name``."""

    user: str
    password: str | None
    host: str
    port: int
    name: str

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        parts = urlsplit(url.strip())
        example = "postgresql://user:password@host:5432/labelstudio"
        if parts.scheme not in SCHEMES:
            raise DatabaseUrlError(
                f"--database {_redact_text(url)!r} is not a PostgreSQL URL; give "
                f"{example}, `{LOCAL}` (the server of `wb ls db start`) or `{SQLITE}`"
            )
        try:
            port = parts.port or 5432
        except ValueError:
            raise DatabaseUrlError(
                f"--database {_redact_text(url)!r} has a port that is not a number; give {example}"
            ) from None
        name = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not parts.username or not name:
            raise DatabaseUrlError(
                f"--database {_redact_text(url)!r} needs a user, a host and a database "
                f"name; give {example}"
            )
        password = unquote(parts.password) if parts.password is not None else None
        return cls(unquote(parts.username), password, parts.hostname, port, name)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, with_password: bool = True) -> str:
        auth = quote(self.user, safe="")
        if with_password and self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.name, safe='')}"

    @property
    def redacted(self) -> str:
        return self.url(with_password=False)

    def label_studio_env(self) -> dict[str, str]:
        """Label Studio's own settings for this database."""
        return {
            "DJANGO_DB": "default",
            "POSTGRE_NAME": self.name,
            "POSTGRE_USER": self.user,
            "POSTGRE_PASSWORD": self.password or "",
            "POSTGRE_HOST": self.host,
            "POSTGRE_PORT": str(self.port),
        }


def _redact_text(url: str) -> str:
    """A URL as text, its password (if any) replaced, for messages."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


# ---- which database a workspace's Label Studio uses --------------------------------------
def resolve(ws, database: str | None) -> DatabaseUrl | None:
    """The database for ``wb ls start``: ``database`` (a URL, ``local``, ``sqlite``), else
    the workspace's ``[labelstudio] database``; None means SQLite. Changes nothing:
    ``remember`` keeps a choice once Label Studio runs on it."""
    value = database if database is not None else ws.get("labelstudio", "database")
    if value is None or str(value).strip().lower() in ("", SQLITE):
        return None
    value = str(value).strip()
    if value.lower() == LOCAL:
        return local_url(ws.services_dir)
    db = DatabaseUrl.parse(value)
    if database is None and db.password is None:  # the setting lacks it: the file has it
        stored = _stored_url(ws.services_dir)
        if stored is not None and stored.redacted == db.redacted:
            db = stored
    return db


def remember(ws, database: str, db: DatabaseUrl | None) -> None:
    """Keep the choice ``database`` resolved to ``db`` as ``[labelstudio] database``: a
    URL without its password (the full URL goes to a file only the owner may read),
    ``local`` or ``sqlite``."""
    path = Path(ws.services_dir) / URL_NAME
    setting = setting_of(database, db)
    if setting in (SQLITE, LOCAL):
        path.unlink(missing_ok=True)
    else:
        write_private(path, json.dumps({"url": db.url()}) + "\n")
    ws.set("labelstudio", "database", setting)


def _recorded_projects(ws) -> dict[str, int]:
    """The Label Studio projects the workspace records, by their setting's name: all live
    in the database Label Studio ran on when they were made."""
    from .expert_review import PROJECT_KEY as EXPERT_REVIEW_KEY

    found = {
        "project_id": ws.project_id(),
        "adjudication_project_id": ws.adjudication_project_id(),
        EXPERT_REVIEW_KEY: ws.get("labelstudio", EXPERT_REVIEW_KEY),
    }
    return {key: pid for key, pid in found.items() if pid is not None}


def describe(db: DatabaseUrl | None) -> str:
    """A database as messages name it: its URL without the password, or ``sqlite``."""
    return SQLITE if db is None else db.redacted


def setting_of(database: str, db: DatabaseUrl | None) -> str:
    """What ``[labelstudio] database`` holds for the choice ``database`` (resolved to
    ``db``): ``sqlite``, ``local`` or the URL without its password."""
    if db is None:
        return SQLITE
    return LOCAL if database.strip().lower() == LOCAL else db.redacted


def check_switch(ws, database: str | None, db: DatabaseUrl | None, new_projects: bool) -> bool:
    """Before `wb ls start --database`: Label Studio's projects do not move between
    databases. When the workspace records projects and ``db`` is another database than
    the one they were made on, refuse (nothing is changed: the old database keeps them),
    unless ``new_projects``: then True, and once Label Studio runs on ``db`` the caller
    calls ``forget_projects`` so that `wb push` makes new ones there (the catalog keeps
    every annotation already pulled). Changes nothing itself."""
    if database is None:  # the remembered setting: no switch
        return False
    old = str(ws.get("labelstudio", "database") or SQLITE)
    if old == setting_of(database, db):
        return False
    projects = _recorded_projects(ws)
    if not projects:
        return False
    if not new_projects:
        ids = ", ".join(f"{key} {pid}" for key, pid in projects.items())
        raise DatabaseSwitch(
            f"this workspace's Label Studio projects ({ids}) live in {old}; "
            f"Label Studio on {describe(db)} does not have them (projects do not move "
            f"between databases). Run `wb pull` on the old database first, then `wb ls "
            f"start --database {_redact_text(database)} --new-projects` to start afresh "
            f"there (`wb push` makes a new project; the old database is left as it is), or "
            f"start without --database to keep using {old}"
        )
    return True


def forget_projects(ws) -> None:
    """Forget the workspace's Label Studio projects (after a switch of database that
    ``check_switch`` allowed): the old database keeps them, `wb push` makes new ones."""
    from .expert_review import PROJECT_KEY as EXPERT_REVIEW_KEY

    forgotten = ", ".join(_recorded_projects(ws))
    ws.set_project(None)
    ws.set_adjudication_project(None)
    ws.set("labelstudio", EXPERT_REVIEW_KEY, None)  # None removes the key
    log.warning("forgot this workspace's projects (%s): `wb push` makes new ones", forgotten)


def _stored_url(services_dir: Path) -> DatabaseUrl | None:
    try:
        return DatabaseUrl.parse(json.loads((Path(services_dir) / URL_NAME).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError, DatabaseUrlError):
        return None


# ---- the check before Label Studio starts ----------------------------------------------
_CHECK = r"""
import os, sys
try:
    import psycopg as driver  # what label-studio 1.23 installs (Django 5 uses either)
except ImportError:
    try:
        import psycopg2 as driver
    except ImportError:
        sys.exit(4)
try:
    driver.connect(host=os.environ["WB_PG_HOST"], port=int(os.environ["WB_PG_PORT"]),
                   user=os.environ["WB_PG_USER"], password=os.environ["WB_PG_PASSWORD"],
                   dbname=os.environ["WB_PG_NAME"],
                   connect_timeout=int(os.environ["WB_PG_TIMEOUT"])).close()
except driver.Error as exc:
    print(str(exc).strip())
    sys.exit(3)
"""


def check_connection(db: DatabaseUrl, python: Path | None) -> None:
    """Connect as Label Studio will (its driver, psycopg or psycopg2, run by its own
    ``python``); raise
    ``DatabaseUnreachable`` with one line that names host:port and what to do."""
    if not port_open(db.port, db.host, timeout=CONNECT_TIMEOUT):
        raise DatabaseUnreachable(
            f"PostgreSQL at {db.where} does not answer: start it (`wb ls db start` for a "
            "local one) or fix the host and port of --database / [labelstudio] database"
        )
    if python is None or not Path(python).is_file():
        log.warning("no Python next to label-studio: not checking the PostgreSQL login")
        return
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WB_PG_HOST": db.host,
        "WB_PG_PORT": str(db.port),
        "WB_PG_USER": db.user,
        "WB_PG_PASSWORD": db.password or "",
        "WB_PG_NAME": db.name,
        "WB_PG_TIMEOUT": str(CONNECT_TIMEOUT),
    }
    done = subprocess.run(
        [str(python), "-c", _CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=CONNECT_TIMEOUT + 30,
    )
    if done.returncode == 0:
        return
    if done.returncode == 4:
        raise DatabaseUnreachable(
            f"Label Studio's environment ({python}) has no PostgreSQL driver (psycopg or "
            f"psycopg2): {Path(python).parent / 'pip'} install 'psycopg[binary]'"
        )
    raise DatabaseUnreachable(_login_message(db, done.stdout or done.stderr))


def _login_message(db: DatabaseUrl, error: str) -> str:
    """The driver's (multi-line) error as one line with what to do."""
    text = " ".join(error.split())
    reason = text.split("FATAL:", 1)[-1].strip() if "FATAL:" in text else text
    if "password authentication failed" in text or "no password supplied" in text:
        what = f"check the user and password in --database ({db.redacted})"
    elif "does not exist" in text and "database" in text:
        what = (
            f"create the database first (createdb -h {db.host} -p {db.port} -U {db.user} {db.name})"
        )
    elif "does not exist" in text and "role" in text:
        what = f"create the user first, or use an existing one ({db.redacted})"
    else:
        what = "check --database / [labelstudio] database"
    return f"PostgreSQL at {db.where} refused Label Studio's login: {reason}. {what[0].upper()}{what[1:]}"


# ---- a local server ----------------------------------------------------------------------
@dataclass
class PostgresState:
    """What ``postgres.json`` records about a server we started."""

    pid: int
    port: int
    data_dir: str
    log: str
    started_at: float

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"


def find_bin_dir() -> Path:
    """``WB_PG_BIN`` (a folder), else Debian's newest ``/usr/lib/postgresql/N/bin``, else
    the folder ``initdb`` on PATH really lives in."""
    env = os.environ.get("WB_PG_BIN")
    candidates: list[Path] = []
    if env:
        candidates.append(Path(env).expanduser())
    else:
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
            reverse=True,
        )
        candidates.extend(versions)
        found = shutil.which("initdb")
        if found:
            candidates.append(Path(found).resolve().parent)
    for d in candidates:
        if all((d / name).is_file() for name in ("initdb", "postgres", "pg_isready", "psql")):
            return d
    where = f"WB_PG_BIN={env}" if env else "/usr/lib/postgresql/*/bin or initdb on PATH"
    raise PostgresNotInstalled(
        f"the PostgreSQL server is not installed (looked in {where}). Install it with: "
        f"{INSTALL_HINT}; or give the URL of a running server to `wb ls start --database`."
    )


def _server_uid() -> int | None:
    """The uid the server runs as: None (ours) unless we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam(RUN_AS).pw_uid
    except KeyError:
        raise PostgresNotInstalled(
            f"PostgreSQL refuses to run as root, and there is no user {RUN_AS!r} to run it "
            f"as; Debian's package creates it: {INSTALL_HINT}"
        ) from None


def _unreachable_folder(path: Path, uid: int) -> Path | None:
    """The first folder above ``path`` that user ``uid`` may not enter, or None."""
    import pwd

    gid = pwd.getpwuid(uid).pw_gid
    for folder in reversed(path.parents):
        try:
            st = folder.stat()
        except OSError:
            return folder
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


def password(services_dir: Path) -> str:
    """The local server's superuser password, generated once (mode 0600)."""
    path = Path(services_dir) / AUTH_NAME
    if path.exists():
        return json.loads(path.read_text())["password"]
    pw = secrets.token_urlsafe(18)
    write_private(path, json.dumps({"user": SUPERUSER, "password": pw}) + "\n")
    return pw


def state_path(services_dir: Path) -> Path:
    return Path(services_dir) / STATE_NAME


def read_state(services_dir: Path) -> PostgresState | None:
    """The recorded local server, or None (a record whose process is gone is removed)."""
    path = state_path(services_dir)
    try:
        data_dir = json.loads(path.read_text()).get("data_dir")
    except (OSError, ValueError, AttributeError):
        data_dir = None
    record = read_pid_file(
        path,
        is_ours=lambda argv: bool(data_dir) and str(data_dir) in argv and "postgres" in argv[0],
    )
    if record is None:
        return None
    try:
        return PostgresState(**record)
    except TypeError:
        remove_pid_file(path)
        return None


def local_url(services_dir: Path) -> DatabaseUrl:
    """The URL of the workspace's running local server (``--database local``)."""
    state = read_state(services_dir)
    if state is None:
        raise DatabaseUnreachable(
            "`--database local` needs this workspace's PostgreSQL, which is not running: "
            "start it with `wb ls db start`"
        )
    return DatabaseUrl(SUPERUSER, password(services_dir), LOCALHOST, state.port, DATABASE)


def _run(
    argv: list[str], uid: int | None, what: str, env: dict | None = None, cwd: Path | None = None
) -> None:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, **as_user(uid)
    )
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[-600:]
        raise ServiceError(
            f"{what} failed ({Path(argv[0]).name}, exit {done.returncode}): {detail}"
        )


def _init_cluster(bin_dir: Path, data_dir: Path, pw: str, uid: int | None) -> None:
    """``initdb`` a new cluster with superuser ``wb`` (password login only)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    pwfile = data_dir.parent / f".{data_dir.name}.pw"
    write_private(pwfile, pw + "\n")
    if uid is not None:
        os.chown(data_dir, uid, -1)
        os.chown(pwfile, uid, -1)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            uid,
            f"initdb of {data_dir}",
            cwd=data_dir,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def start(
    services_dir: Path,
    port: int = DEFAULT_PORT,
    data_dir: Path | str | None = None,
    timeout: float = 120.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[PostgresState, bool]:
    """Start the workspace's PostgreSQL (creating its cluster and the ``labelstudio``
    database the first time); returns (state, started_now). A failure stops what it
    started and removes a cluster it had just created."""
    services_dir = Path(services_dir)
    running = read_state(services_dir)
    if running is not None:
        return running, False
    bin_dir = find_bin_dir()
    uid = _server_uid()
    data_dir = Path(data_dir).expanduser().resolve() if data_dir else services_dir / DATA_NAME
    if uid is not None:
        blocked = _unreachable_folder(data_dir, uid)
        if blocked is not None:
            raise ServiceError(
                f"PostgreSQL runs as user {RUN_AS!r} (it refuses root), who cannot enter "
                f"{blocked}: let others enter it (chmod o+x {blocked}) or pass --data-dir "
                "in a folder they can reach (e.g. under /var/tmp)"
            )
    if not port_is_free(port):
        raise ServiceError(
            f"port {port} on {LOCALHOST} is already in use; stop what uses it, or pick "
            "another with --port"
        )
    pw = password(services_dir)
    fresh = not (data_dir / "PG_VERSION").exists()
    if fresh and data_dir.exists() and any(data_dir.iterdir()):
        raise ServiceError(
            f"{data_dir} is not empty and holds no PostgreSQL cluster; pass an empty "
            "folder or a new path with --data-dir"
        )
    if fresh:
        try:
            _init_cluster(bin_dir, data_dir, pw, uid)
        except BaseException:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
    log_path = services_dir / LOG_NAME
    cmd = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={LOCALHOST}",
        "-c",
        "unix_socket_directories=",
    ]
    server = spawn(
        "PostgreSQL",
        cmd,
        log_path,
        cwd=data_dir,
        user=uid,
        stop_signal=signal.SIGINT,  # "fast" shutdown: ends sessions, checkpoints, exits
        stop_timeout=STOP_TIMEOUT,
    )
    client_env = {**os.environ, "PGPASSWORD": pw, "PGCONNECT_TIMEOUT": "5"}

    def ready() -> bool:
        argv = [str(bin_dir / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(port)]
        return subprocess.run(argv, capture_output=True).returncode == 0

    try:
        server.wait_healthy(
            ready,
            timeout,
            interval=0.3,
            waiting_for=f"accept connections on {LOCALHOST}:{port}",
            on_progress=on_progress,
        )
        _ensure_database(bin_dir, port, client_env)
    except BaseException:
        server.stop()
        if fresh:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    state = PostgresState(server.pid, port, str(data_dir), str(log_path), time.time())
    write_pid_file(state_path(services_dir), asdict(state))
    log.info("PostgreSQL started: pid %d, port %d, data %s", server.pid, port, data_dir)
    return state, True


def _ensure_database(bin_dir: Path, port: int, env: dict) -> None:
    base = ["-h", LOCALHOST, "-p", str(port), "-U", SUPERUSER]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
    done = subprocess.run(
        [str(bin_dir / "psql"), *base, "-d", "postgres", "-tAc", query],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if done.returncode != 0:
        raise ServiceError(
            f"PostgreSQL on {LOCALHOST}:{port} started but refused its own superuser: "
            f"{' '.join(done.stderr.split())}"
        )
    if done.stdout.strip() != "1":
        _run([str(bin_dir / "createdb"), *base, DATABASE], None, "createdb", env=env)


def stop(services_dir: Path, timeout: float = STOP_TIMEOUT) -> PostgresState | None:
    """Stop the workspace's local server by its recorded PID; None when none ran."""
    state = read_state(services_dir)
    if state is None:
        return None
    stop_process(state.pid, timeout, name="PostgreSQL", first_signal=signal.SIGINT)
    remove_pid_file(state_path(services_dir))
    return state
