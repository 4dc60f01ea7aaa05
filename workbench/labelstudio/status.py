"""`wb ls status`: is Label Studio up, which project, how many tasks it holds."""

from __future__ import annotations

import logging

from ..errors import WorkbenchError
from .client import LabelStudioClient, resolve_connection
from .postgres import SQLITE
from .server import is_healthy, read_state

log = logging.getLogger(__name__)


def status(ws, url: str | None = None) -> tuple[dict, str | None]:
    """``({"url", "running", "project_id", "tasks", "database"}, problem)``: ``database``
    is what the server this workspace started runs on (its URL without the password), else
    the ``[labelstudio] database`` setting (``sqlite`` when unset); ``tasks`` is what
    Label Studio reports for the project (None when it cannot say); ``problem`` says
    why a running server could not be asked (wrong token, project deleted)."""
    conn = resolve_connection(ws, url)
    running = is_healthy(conn.url)
    pid = ws.project_id()
    local = read_state(ws.services_dir)
    if local is not None:
        database = local.database or SQLITE
    else:
        database = ws.get("labelstudio", "database") or SQLITE
    out = {
        "url": conn.url,
        "running": running,
        "project_id": pid,
        "tasks": None,
        "database": database,
    }
    problem = None
    if running and pid is not None:
        try:
            out["tasks"] = LabelStudioClient.from_connection(conn).task_count(pid)
        except WorkbenchError as exc:
            problem = str(exc)
    return out, problem


def local_server(ws):
    """The server this workspace started (pid, port, log), or None."""
    return read_state(ws.services_dir)
