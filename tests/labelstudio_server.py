"""ONE real Label Studio per test session, for the integration and fault tiers
(loaded by tests/conftest.py as a plugin, so every folder sees the same server).

``label_studio`` starts the real server from ``.venv-ls`` (or ``WB_LS_BIN``) on a
free port, with its data in a temporary workspace, through the same code as
`wb ls start`, and stops it by PID at the end. It serves local files from
``label_studio.files_root``: put the images a test pushes under a sub-folder of it
(``label_studio.images_dir("my-test")``). The first start runs migrations (~30 s or
more on a busy machine); every test after that reuses the server.

``label_studio_any`` runs a module's tests once on SQLite and once on PostgreSQL
(``label_studio_postgresql``: a second server on the session's ``postgresql``).

Use it from another area (ML backend, dedup adjudication)::

    def test_x(label_studio, workspace_factory):
        ws = workspace_factory()
        label_studio.attach(ws)          # url, token, document root into ws
        ls = label_studio.client         # label_studio_sdk.LabelStudio, ready
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class LabelStudioServer:
    url: str
    token: str
    client: object  # label_studio_sdk.LabelStudio with the admin token
    files_root: Path  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
    workspace: object  # the workspace that owns the server (services/labelstudio)
    pid: int
    port: int
    log: Path

    def images_dir(self, name: str) -> Path:
        """A fresh folder under the served root for one test's images."""
        d = self.files_root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def attach(self, ws) -> None:
        """Point a workspace at this server: URL, document root and the admin token."""
        from workbench.fsutil import write_private
        from workbench.labelstudio import server

        ws.set("labelstudio", "url", self.url)
        ws.set("labelstudio", "document_root", str(self.files_root))
        creds = json.loads((self.workspace.services_dir / server.AUTH_NAME).read_text())
        write_private(ws.services_dir / server.AUTH_NAME, json.dumps(creds))


def _serve(tmp_path_factory, name: str, database=None):
    """A real Label Studio on SQLite (``database`` None) or on a PostgreSQL URL, through
    the same code as `wb ls start`; stopped by PID at the end."""
    from label_studio_sdk import LabelStudio

    from workbench.labelstudio import server
    from workbench.services import free_port, stop
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    try:
        server.find_executable()
    except server.LabelStudioNotInstalled as exc:
        pytest.skip(f"Label Studio server not installed here: {exc}")
    root = tmp_path_factory.mktemp(name)
    files_root = root / "files"
    files_root.mkdir()
    ws = Workspace.create(root / "ws", Taxonomy.default())
    # a developer's own WB_LS_* settings must not leak into the test server
    saved = {
        k: os.environ.pop(k)
        for k in ("WB_LS_TOKEN", "WB_LS_URL", "WB_LS_DOCUMENT_ROOT")
        if k in os.environ
    }
    port = free_port()
    state = None
    try:
        if database is None:
            state, _ = server.start(ws, port=port, document_root=files_root, timeout=420)
        else:  # through the command line: `wb ls start --database URL` is what users run
            state = _start_with_cli(ws, port, files_root, database)
        token = server.credentials(ws.services_dir).token
        client = LabelStudio(base_url=state.url, api_key=token)
        yield LabelStudioServer(
            url=state.url,
            token=token,
            client=client,
            files_root=files_root,
            workspace=ws,
            pid=state.pid,
            port=port,
            log=Path(state.log),
        )
    finally:
        if state is not None:
            stop(state.pid, name="Label Studio")
            server.state_path(ws.services_dir).unlink(missing_ok=True)
        os.environ.update(saved)


def _start_with_cli(ws, port: int, files_root: Path, database: str):
    from click.testing import CliRunner

    from workbench.cli import cli
    from workbench.labelstudio import server

    args = ["-w", str(ws.root), "ls", "start", "--port", str(port)]
    args += ["--document-root", str(files_root), "--timeout", "420", "--database", database]
    result = CliRunner().invoke(cli, args)
    state = server.read_state(ws.services_dir)
    if result.exit_code != 0:
        if state is not None:
            from workbench.services import stop

            stop(state.pid, name="Label Studio")
        raise AssertionError(f"wb ls start --database failed: {result.output}")
    assert f"Label Studio started at http://127.0.0.1:{port}" in result.output
    return state


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """The session's Label Studio on SQLite."""
    yield from _serve(tmp_path_factory, "label-studio")


@pytest.fixture(scope="session")
def label_studio_postgresql(tmp_path_factory, postgresql):
    """A second Label Studio for the session, on the session's PostgreSQL."""
    yield from _serve(tmp_path_factory, "label-studio-pg", database=postgresql.url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def label_studio_any(request):
    """Label Studio on each database in turn: a module using it runs once per database."""
    name = "label_studio" if request.param == "sqlite" else "label_studio_postgresql"
    return request.getfixturevalue(name)
