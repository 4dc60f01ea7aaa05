"""A local Label Studio server for one workspace: start, stop by PID, status.

The server is the real ``label-studio`` program from its own virtual environment
(``.venv-ls``). It runs bound to 127.0.0.1 with its data in
``services/labelstudio/``, a preset admin user and API token, signup closed, and
local-files serving rooted at the folder that holds the catalog's images.

Files in ``services/``:

- ``labelstudio.json``: the running server (pid, port, url, document root, log);
- ``labelstudio.auth.json`` (mode 0600): admin username, password and API token,
  generated once per workspace (``WB_LS_TOKEN`` overrides the token);
- ``labelstudio.log``: the server's output.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ServiceError, WorkbenchError
from ..fsutil import write_private
from ..services import (
    ManagedProcess,
    port_is_free,
    read_pid_file,
    remove_pid_file,
    spawn,
    write_pid_file,
)
from ..services import stop as stop_process
from .postgres import DatabaseUrl, check_connection
from .postgres import check_switch as check_database_switch
from .postgres import forget_projects as forget_database_projects
from .postgres import remember as remember_database
from .postgres import resolve as resolve_database

log = logging.getLogger(__name__)

LABEL_STUDIO_VERSION = "1.23.2"  # what set-up installs into .venv-ls
DEFAULT_PORT = 8080
DEFAULT_USERNAME = "admin@workbench.local"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SETUP_HINT = (
    f"python -m venv .venv-ls && .venv-ls/bin/pip install label-studio=={LABEL_STUDIO_VERSION}"
    " (in the repository root)"
)

STATE_NAME = "labelstudio.json"
AUTH_NAME = "labelstudio.auth.json"
LOG_NAME = "labelstudio.log"
DATA_NAME = "labelstudio"
STOP_TIMEOUT = 20.0  # seconds between SIGTERM and SIGKILL


class LabelStudioNotInstalled(ServiceError):
    """The label-studio program was not found."""


class PortInUse(ServiceError):
    """Something already listens on the requested port."""


class DocumentRootError(WorkbenchError):
    """Images cannot be served from a safe common folder."""


@dataclass
class Credentials:
    username: str
    password: str
    token: str


@dataclass
class ServerState:
    """What ``labelstudio.json`` records about a server we started."""

    pid: int
    port: int
    url: str
    data_dir: str
    document_root: str | None
    log: str
    started_at: float
    database: str | None = None  # PostgreSQL URL without its password; None: SQLite


# ---- finding the program ---------------------------------------------------------
def find_executable() -> Path:
    """``WB_LS_BIN``, else ``.venv-ls/bin/label-studio`` next to the repo, else PATH."""
    env = os.environ.get("WB_LS_BIN")
    if env:
        p = Path(env).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise LabelStudioNotInstalled(
            f"WB_LS_BIN={env} is not an executable file. Install Label Studio with: {SETUP_HINT}"
        )
    local = REPO_ROOT / ".venv-ls" / "bin" / "label-studio"
    if local.is_file():
        return local
    found = shutil.which("label-studio")
    if found:
        return Path(found)
    raise LabelStudioNotInstalled(
        f"the Label Studio server is not installed (looked for WB_LS_BIN, {local}, and "
        f"`label-studio` on PATH). Install it with: {SETUP_HINT}; or use a running server "
        "with --ls-url / WB_LS_URL and WB_LS_TOKEN."
    )


# ---- credentials -------------------------------------------------------------------
def credentials(services_dir: Path) -> Credentials:
    """The workspace's admin credentials, generated once and kept with mode 0600.

    ``WB_LS_TOKEN`` replaces the stored token (it must be 40 hex characters when a
    local server is to preset it; any token works against an external server).
    """
    path = Path(services_dir) / AUTH_NAME
    if path.exists():
        data = json.loads(path.read_text())
        creds = Credentials(data["username"], data["password"], data["token"])
    else:
        creds = Credentials(DEFAULT_USERNAME, secrets.token_urlsafe(12), secrets.token_hex(20))
        write_private(path, json.dumps(asdict(creds), indent=2) + "\n")
    env_token = os.environ.get("WB_LS_TOKEN")
    if env_token:
        creds = Credentials(creds.username, creds.password, env_token.strip())
    return creds


# ---- the served folder ----------------------------------------------------------------
def choose_document_root(image_paths: Iterable[str | Path]) -> Path | None:
    """The folder Label Studio may serve files from: the images' common folder.

    Label Studio refuses a storage path equal to the document root, so when an image
    lies directly in the common folder its parent becomes the root. Never ``/``.
    """
    parents = {Path(p).resolve().parent for p in image_paths}
    if not parents:
        return None
    common = Path(os.path.commonpath([str(p) for p in parents]))
    if common in parents:  # some image sits directly in the common folder
        common = common.parent
    if common == Path(common.anchor):
        raise DocumentRootError(
            f"the catalog's images have no common folder below {common} (e.g. "
            f"{min(parents)} ...). Label Studio must not serve the whole file system: "
            "keep the images under one folder, or pass --document-root."
        )
    return common


def storage_dirs(image_paths: Iterable[str | Path], root: Path) -> list[Path]:
    """The sub-folders of ``root`` to connect as local-files storages (one per first
    path component below the root)."""
    out = set()
    for p in image_paths:
        rel = Path(p).resolve().relative_to(root)
        if len(rel.parts) < 2:
            raise DocumentRootError(
                f"{p} lies directly in the served folder {root}; "
                "restart the server so it serves the folder above"
            )
        out.add(root / rel.parts[0])
    return sorted(out)


# ---- health ------------------------------------------------------------------------
def is_healthy(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
        return r.status_code == 200 and r.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


# ---- launching (also used by the test fixture) ------------------------------------------
def server_env(
    data_dir: Path,
    creds: Credentials,
    document_root: Path | None,
    database: DatabaseUrl | None = None,
) -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):  # a parent Label Studio's settings must not leak in
        if key.startswith(("LABEL_STUDIO_", "DJANGO_", "POSTGRE_")):
            del env[key]
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "DJANGO_DB": "sqlite",
            "LABEL_STUDIO_USERNAME": creds.username,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
            # legacy tokens are off by default for a new organisation in 1.23
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # an ML backend / webhook on 127.0.0.1 is refused with 403 otherwise
            "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
            "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }
    )
    if document_root is not None:
        env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] = "true"
        env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(document_root)
    else:
        env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] = "false"
    if database is not None:
        env.update(database.label_studio_env())
    return env


def launch(
    port: int,
    data_dir: Path,
    creds: Credentials,
    document_root: Path | None,
    log_path: Path,
    executable: Path | None = None,
    database: DatabaseUrl | None = None,
) -> ManagedProcess:
    """Start ``label-studio`` in its own session (so stopping it reaches only it), on
    SQLite in ``data_dir`` or on ``database`` (checked first: see ``postgres``)."""
    if not port_is_free(port):
        raise PortInUse(
            f"port {port} on 127.0.0.1 is already in use; Label Studio would "
            "silently move to another port. Stop what uses it, or pick another "
            "with --port."
        )
    exe = executable or find_executable()
    if database is not None:
        check_connection(database, exe.parent / "python")
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    log.info("starting %s (data %s, serving %s)", " ".join(cmd), data_dir, document_root)
    return spawn(
        "Label Studio",
        cmd,
        log_path,
        env=server_env(data_dir, creds, document_root, database),
        cwd=data_dir,
        stop_timeout=STOP_TIMEOUT,
    )


def _is_label_studio(argv: list[str]) -> bool:
    """Guard against a recycled PID: the process must still be label-studio."""
    return any("label-studio" in arg for arg in argv)


# ---- the workspace's server ------------------------------------------------------------
def state_path(services_dir: Path) -> Path:
    return Path(services_dir) / STATE_NAME


def read_state(services_dir: Path) -> ServerState | None:
    """The recorded server, or None; a record whose process is gone is removed."""
    record = read_pid_file(state_path(services_dir), is_ours=_is_label_studio)
    if record is None:
        return None
    try:
        return ServerState(**record)
    except TypeError:
        remove_pid_file(state_path(services_dir))
        return None


def start(
    ws,
    port: int = DEFAULT_PORT,
    document_root: Path | str | None = None,
    timeout: float = 300.0,
    on_progress: Callable[[int, int], None] | None = None,
    database: str | None = None,
    new_projects: bool = False,
) -> tuple[ServerState, bool]:
    """Start the workspace's Label Studio; returns (state, started_now).

    ``document_root`` defaults to the common folder of the catalog's active images.
    ``database``: a PostgreSQL URL, ``local`` (the workspace's `wb ls db start`
    server) or ``sqlite``; remembered in ``[labelstudio] database``. None: that setting
    (SQLite when unset). A server already running is returned as it is. Switching
    database leaves the old one as it was: its projects stay there, so a switch while
    the workspace records projects is refused unless ``new_projects``, which forgets them
    once the server answers on the new one (see ``postgres.check_switch``).
    """
    services = ws.services_dir
    running = read_state(services)
    if running is not None:
        return running, False
    db = resolve_database(ws, database)
    switching = check_database_switch(ws, database, db, new_projects)
    if document_root is None:
        with ws.open_catalog() as catalog:
            document_root = choose_document_root(r.path for r in catalog.images(status="active"))
        if document_root is None:
            log.warning(
                "the catalog has no images yet: Label Studio will serve no local files "
                "until it is restarted after `wb ingest`"
            )
    else:
        document_root = Path(document_root).expanduser().resolve()
        if document_root == Path(document_root.anchor):
            raise DocumentRootError(
                "Label Studio must not serve the whole file system (/); "
                "pass the folder that holds the images"
            )
        if not document_root.is_dir():
            raise DocumentRootError(f"--document-root {document_root} is not a folder")
    creds = credentials(services)
    data_dir = services / DATA_NAME
    log_path = services / LOG_NAME
    url = f"http://127.0.0.1:{port}"
    server = launch(port, data_dir, creds, document_root, log_path, database=db)
    state = ServerState(
        pid=server.pid,
        port=port,
        url=url,
        data_dir=str(data_dir),
        document_root=str(document_root) if document_root else None,
        log=str(log_path),
        started_at=time.time(),
        database=db.redacted if db is not None else None,
    )
    write_pid_file(state_path(services), asdict(state))
    try:
        server.wait_healthy(
            lambda: is_healthy(url),
            timeout,
            waiting_for=f"answer {url}/health",
            hint=" (the first start runs migrations)",
            on_progress=on_progress,
        )
    except BaseException:  # wait_healthy stopped the server
        remove_pid_file(state_path(services))
        raise
    ws.set("labelstudio", "url", url)
    if database is not None:
        remember_database(ws, database, db)
    if switching:  # only now that Label Studio runs on the new database
        forget_database_projects(ws)
    return state, True


def stop(ws, timeout: float = STOP_TIMEOUT) -> ServerState | None:
    """Stop the workspace's server by its recorded PID; None when none was running."""
    services = ws.services_dir
    state = read_state(services)
    if state is None:
        return None
    stop_process(state.pid, timeout, name="Label Studio")
    remove_pid_file(state_path(services))
    return state
