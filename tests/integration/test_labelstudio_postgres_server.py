"""Label Studio on a REAL PostgreSQL (the session's `postgresql`, Debian's package), and
`wb ls db start|stop|status` / `wb ls start --database` through click's CliRunner.
The push/pull round trip on PostgreSQL is test_labelstudio_roundtrip.py (run once per
database)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.labelstudio import postgres, server
from workbench.services import free_port, port_is_free, port_open
from workbench.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _needs_label_studio():
    try:
        server.find_executable()
    except server.LabelStudioNotInstalled as exc:
        pytest.skip(f"Label Studio server not installed here: {exc}")


def test_label_studio_keeps_its_projects_in_postgresql(label_studio_postgresql, postgresql):
    project = label_studio_postgresql.client.projects.create(title="kept in postgres")
    assert postgresql.sql(f"SELECT title FROM project WHERE id = {project.id}") == [
        "kept in postgres"
    ]
    data_dir = label_studio_postgresql.workspace.services_dir / server.DATA_NAME
    assert not (data_dir / "label_studio.sqlite3").exists()
    # started by `wb ls start --database URL` (another Workspace object: read it afresh)
    ws = Workspace.open(label_studio_postgresql.workspace.root)
    redacted = postgres.DatabaseUrl.parse(postgresql.url).redacted
    assert server.read_state(ws.services_dir).database == redacted
    assert ws.get("labelstudio", "database") == redacted  # remembered, without the password
    assert postgresql.password not in (ws.root / "workbench.toml").read_text()
    assert postgres.resolve(ws, None).url() == postgresql.url  # the next start finds it


def test_a_wrong_password_fails_in_one_line_and_starts_nothing(postgresql, workspace_factory):
    _needs_label_studio()
    ws = workspace_factory()
    port = free_port()
    url = f"postgresql://wb:not-the-password@127.0.0.1:{postgresql.port}/labelstudio"
    result = CliRunner().invoke(
        cli, ["-w", str(ws.root), "ls", "start", "--port", str(port), "--database", url]
    )
    assert result.exit_code != 0
    assert (
        f"PostgreSQL at 127.0.0.1:{postgresql.port} refused Label Studio's login: "
        'password authentication failed for user "wb"'
    ) in result.output
    assert "not-the-password" not in result.output
    assert server.read_state(ws.services_dir) is None and port_is_free(port)
    assert ws.get("labelstudio", "database") is None  # the setting is unchanged


def test_an_unreachable_server_fails_naming_host_and_port(workspace_factory):
    _needs_label_studio()
    ws = workspace_factory()
    closed = free_port()
    result = CliRunner().invoke(
        cli,
        [
            "-w",
            str(ws.root),
            "ls",
            "start",
            "--port",
            str(free_port()),
            "--database",
            f"postgresql://wb:x@127.0.0.1:{closed}/labelstudio",
        ],
    )
    assert result.exit_code != 0
    assert f"PostgreSQL at 127.0.0.1:{closed} does not answer" in result.output
    assert server.read_state(ws.services_dir) is None


def test_wb_ls_db_start_status_stop(postgresql_installed, workspace_factory, reachable_dir):
    ws = workspace_factory()
    port = free_port()
    data = reachable_dir / "cluster"
    run = CliRunner().invoke
    started = run(
        cli, ["-w", str(ws.root), "ls", "db", "start", "--port", str(port), "--data-dir", str(data)]
    )
    try:
        assert started.exit_code == 0, started.output
        assert f"PostgreSQL started on 127.0.0.1:{port}" in started.output
        assert f"postgresql://wb@127.0.0.1:{port}/labelstudio" in started.output
        again = run(cli, ["-w", str(ws.root), "ls", "db", "start", "--port", str(port)])
        assert "already running" in again.output
        status = run(cli, ["-w", str(ws.root), "ls", "db", "status", "--json"])
        info = json.loads(status.stdout)
        assert info["running"] and info["port"] == port and info["data_dir"] == str(data)
        if _has_ls():  # its generated password logs in, through Label Studio's driver
            python = server.find_executable().parent / "python"
            postgres.check_connection(postgres.local_url(ws.services_dir), python)
    finally:
        stopped = run(cli, ["-w", str(ws.root), "ls", "db", "stop"])
    assert stopped.exit_code == 0 and f"stopped PostgreSQL (pid {info['pid']})" in stopped.output
    assert not port_open(port)
    # the cluster stays and starts again, the same password still logs in
    restarted = run(
        cli, ["-w", str(ws.root), "ls", "db", "start", "--port", str(port), "--data-dir", str(data)]
    )
    try:
        assert restarted.exit_code == 0, restarted.output
    finally:
        run(cli, ["-w", str(ws.root), "ls", "db", "stop"])


def _has_ls() -> bool:
    try:
        server.find_executable()
    except server.LabelStudioNotInstalled:
        return False
    return True


def test_wb_ls_db_start_on_a_busy_port_fails_and_leaves_no_cluster(
    postgresql, workspace_factory, reachable_dir
):
    ws = workspace_factory()
    data = reachable_dir / "cluster"
    result = CliRunner().invoke(
        cli,
        [
            "-w",
            str(ws.root),
            "ls",
            "db",
            "start",
            "--port",
            str(postgresql.port),
            "--data-dir",
            str(data),
        ],
    )
    assert result.exit_code != 0
    assert f"port {postgresql.port} on 127.0.0.1 is already in use" in result.output
    assert not data.exists() and postgres.read_state(ws.services_dir) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_as_root_a_data_folder_the_server_user_cannot_enter_is_named(
    postgresql_installed, workspace_factory
):
    ws = workspace_factory()  # under pytest's own temporary folder, closed to others
    result = CliRunner().invoke(
        cli, ["-w", str(ws.root), "ls", "db", "start", "--port", str(free_port())]
    )
    assert result.exit_code != 0
    assert "runs as user 'postgres' (it refuses root), who cannot enter" in result.output
    assert "--data-dir" in result.output
