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
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import ServiceError, WorkbenchError
from ..fsutil import atomic_write_text

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


# ---- finding the program ---------------------------------------------------------
def find_executable() -> Path:
    """``WB_LS_BIN``, else ``.venv-ls/bin/label-studio`` next to the repo, else PATH."""
    env = os.environ.get("WB_LS_BIN")
    if env:
        p = Path(env).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise LabelStudioNotInstalled(
            f"WB_LS_BIN={env} is not an executable file. "
            f"Install Label Studio with: {SETUP_HINT}"
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
        _write_private(path, json.dumps(asdict(creds), indent=2) + "\n")
    env_token = os.environ.get("WB_LS_TOKEN")
    if env_token:
        creds = Credentials(creds.username, creds.password, env_token.strip())
    return creds


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


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
            f"{sorted(parents)[0]} ...). Label Studio must not serve the whole file system: "
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


# ---- ports and health ----------------------------------------------------------------
def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
        return r.status_code == 200 and r.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


# ---- launching (also used by the test fixture) ------------------------------------------
def server_env(data_dir: Path, creds: Credentials, document_root: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):  # a parent Label Studio's settings must not leak in
        if key.startswith(("LABEL_STUDIO_", "DJANGO_")):
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
    return env


def launch(
    port: int,
    data_dir: Path,
    creds: Credentials,
    document_root: Path | None,
    log_path: Path,
    executable: Path | None = None,
) -> subprocess.Popen:
    """Start ``label-studio`` in its own session (so stopping it reaches only it)."""
    if not port_is_free(port):
        raise PortInUse(
            f"port {port} on 127.0.0.1 is already in use; Label Studio would "
            "silently move to another port. Stop what uses it, or pick another "
            "with --port."
        )
    exe = executable or find_executable()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    log.info("starting %s (data %s, serving %s)", " ".join(cmd), data_dir, document_root)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd,
            env=server_env(data_dir, creds, document_root),
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(
    url: str,
    proc: subprocess.Popen | None,
    log_path: Path,
    timeout: float,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Poll ``/health`` until UP; fail early if the process exits."""
    start = time.monotonic()
    while True:
        waited = time.monotonic() - start
        if on_progress:
            on_progress(int(min(waited, timeout)), int(timeout))
        if is_healthy(url):
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"Label Studio exited with code {proc.returncode} while starting. "
                f"Last lines of {log_path}:\n{_tail(log_path)}"
            )
        if waited > timeout:
            raise ServiceError(
                f"Label Studio did not answer {url}/health within {timeout:.0f} s "
                f"(the first start runs migrations). See {log_path}:\n{_tail(log_path)}"
            )
        time.sleep(1.0)


def terminate(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM our server (its process group: we started it in its own session),
    SIGKILL after ``timeout``. Returns False when it was not running."""
    if not _alive(pid):
        return False
    own_group = _pgid(pid) == pid

    def send(sig: int) -> None:
        try:
            if own_group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    log.warning("Label Studio (pid %s) ignored SIGTERM for %.0f s; sending SIGKILL", pid, timeout)
    send(signal.SIGKILL)
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    return True


def _alive(pid: int) -> bool:
    try:
        # reap it if it is our own child (a zombie still answers kill(0))
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            zombie = stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True
        if zombie:  # it exited between the waitpid above and now: reap it if ours
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        return not zombie
    return True


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _is_label_studio(pid: int) -> bool:
    """Guard against a recycled PID: the process must still be label-studio."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return _alive(pid)  # no /proc (macOS): trust the PID file
    try:
        return b"label-studio" in cmdline.read_bytes()
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---- the workspace's server ------------------------------------------------------------
def state_path(services_dir: Path) -> Path:
    return Path(services_dir) / STATE_NAME


def read_state(services_dir: Path) -> ServerState | None:
    """The recorded server, or None; a record whose process is gone is removed."""
    path = state_path(services_dir)
    if not path.exists():
        return None
    try:
        state = ServerState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not (_alive(state.pid) and _is_label_studio(state.pid)):
        path.unlink(missing_ok=True)
        return None
    return state


def start(
    ws,
    port: int = DEFAULT_PORT,
    document_root: Path | str | None = None,
    timeout: float = 300.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[ServerState, bool]:
    """Start the workspace's Label Studio; returns (state, started_now).

    ``document_root`` defaults to the common folder of the catalog's active images.
    """
    services = ws.services_dir
    running = read_state(services)
    if running is not None:
        return running, False
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
    proc = launch(port, data_dir, creds, document_root, log_path)
    state = ServerState(
        pid=proc.pid,
        port=port,
        url=url,
        data_dir=str(data_dir),
        document_root=str(document_root) if document_root else None,
        log=str(log_path),
        started_at=time.time(),
    )
    atomic_write_text(state_path(services), json.dumps(asdict(state), indent=2) + "\n")
    try:
        wait_healthy(url, proc, log_path, timeout, on_progress)
    except BaseException:
        terminate(proc.pid)
        state_path(services).unlink(missing_ok=True)
        raise
    ws.set("labelstudio", "url", url)
    return state, True


def stop(ws, timeout: float = 20.0) -> ServerState | None:
    """Stop the workspace's server by its recorded PID; None when none was running."""
    services = ws.services_dir
    state = read_state(services)
    if state is None:
        return None
    terminate(state.pid, timeout)
    state_path(services).unlink(missing_ok=True)
    return state
