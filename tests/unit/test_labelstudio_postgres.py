"""Label Studio's PostgreSQL: the URL, what Label Studio is given, what the workspace keeps,
and the one-line messages (no server needed here; tests/integration has the real ones)."""

from __future__ import annotations

import os
import stat

import pytest

from workbench.labelstudio import postgres, server
from workbench.labelstudio.postgres import DatabaseUrl, DatabaseUrlError

pytestmark = pytest.mark.unit


def test_a_url_parses_into_label_studios_own_settings():
    db = DatabaseUrl.parse("postgresql://ann%40lab:p%3Aw%40d@db.lab:6543/ls")
    assert db == DatabaseUrl("ann@lab", "p:w@d", "db.lab", 6543, "ls")
    assert db.label_studio_env() == {
        "DJANGO_DB": "default",
        "POSTGRE_NAME": "ls",
        "POSTGRE_USER": "ann@lab",
        "POSTGRE_PASSWORD": "p:w@d",
        "POSTGRE_HOST": "db.lab",
        "POSTGRE_PORT": "6543",
    }
    assert DatabaseUrl.parse(db.url()) == db  # quoting round-trips
    assert db.redacted == "postgresql://ann%40lab@db.lab:6543/ls"
    assert DatabaseUrl.parse("postgres://u@h/d").port == 5432


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:secret@h/d", "is not a PostgreSQL URL"),
        ("postgresql://u:secret@h:port/d", "port that is not a number"),
        ("postgresql://u:secret@h:5432/", "needs a user, a host and a database name"),
        ("postgresql://h:5432/d", "needs a user"),
    ],
)
def test_a_bad_url_is_refused_with_an_example_and_never_shows_the_password(url, says):
    with pytest.raises(DatabaseUrlError) as err:
        DatabaseUrl.parse(url)
    assert says in str(err.value) and "postgresql://user:password@host" in str(err.value)
    assert "secret" not in str(err.value)


def test_label_studio_is_given_postgresql_and_a_parents_settings_do_not_leak(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTGRE_HOST", "somewhere-else")
    monkeypatch.setenv("DJANGO_DB", "sqlite")
    creds = server.Credentials("a", "b", "c")
    env = server.server_env(tmp_path, creds, None, DatabaseUrl("u", "pw", "h", 1, "d"))
    assert env["DJANGO_DB"] == "default" and env["POSTGRE_HOST"] == "h"
    assert env["POSTGRE_PASSWORD"] == "pw"
    plain = server.server_env(tmp_path, creds, None)
    assert plain["DJANGO_DB"] == "sqlite" and "POSTGRE_HOST" not in plain


def test_the_workspace_keeps_the_url_without_its_password(workspace_factory):
    ws = workspace_factory()
    assert postgres.resolve(ws, None) is None  # SQLite by default
    db = postgres.resolve(ws, "postgresql://u:s3cret@h:7/d")
    postgres.remember(ws, "postgresql://u:s3cret@h:7/d", db)
    assert ws.get("labelstudio", "database") == "postgresql://u@h:7/d"
    assert "s3cret" not in (ws.root / "workbench.toml").read_text()
    private = ws.services_dir / postgres.URL_NAME
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert postgres.resolve(ws, None) == db  # the next start finds the password again
    postgres.remember(ws, "sqlite", None)
    assert ws.get("labelstudio", "database") == "sqlite" and not private.exists()
    assert postgres.resolve(ws, None) is None


def test_local_without_a_running_server_says_how_to_start_one(workspace_factory):
    ws = workspace_factory()
    with pytest.raises(postgres.DatabaseUnreachable, match="wb ls db start"):
        postgres.resolve(ws, "local")


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            'connection to server at "h" (1.2.3.4), port 7 failed: FATAL:  password '
            'authentication failed for user "u"\n',
            "PostgreSQL at h:7 refused Label Studio's login: password authentication failed "
            'for user "u". Check the user and password in --database (postgresql://u@h:7/d)',
        ),
        (
            'connection to server at "h", port 7 failed: FATAL:  database "d" does not exist',
            "Create the database first (createdb -h h -p 7 -U u d)",
        ),
    ],
)
def test_a_refused_login_is_one_line_naming_host_and_port(error, says):
    msg = postgres._login_message(DatabaseUrl("u", "pw", "h", 7, "d"), error)
    assert says in msg and "\n" not in msg and "pw" not in msg


def test_an_unreachable_server_is_named_before_label_studio_starts(tmp_path):
    from workbench.services import free_port

    port = free_port()
    with pytest.raises(postgres.DatabaseUnreachable) as err:
        postgres.check_connection(DatabaseUrl("u", "pw", "127.0.0.1", port, "d"), None)
    assert f"PostgreSQL at 127.0.0.1:{port} does not answer" in str(err.value)
    assert "wb ls db start" in str(err.value)


def test_a_folder_the_server_user_cannot_enter_is_found(tmp_path):
    closed = tmp_path / "closed"
    (closed / "inside").mkdir(parents=True)
    closed.chmod(0o700)
    tmp_path.chmod(0o755)
    nobody = 65534
    assert postgres._unreachable_folder(closed / "inside" / "data", nobody) in (
        closed,
        *closed.parents,
    )
    closed.chmod(0o755)
    blocked = postgres._unreachable_folder(closed / "inside" / "data", nobody)
    assert blocked is None or blocked not in (closed, closed / "inside")


def test_no_postgresql_programs_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_PG_BIN", str(tmp_path))
    with pytest.raises(postgres.PostgresNotInstalled, match="apt-get install -y postgresql"):
        postgres.find_bin_dir()


def test_switching_database_with_projects_is_refused_and_changes_nothing(workspace_factory):
    from click.testing import CliRunner

    from workbench.cli import cli

    ws = workspace_factory()
    ws.set_project(3, "species")
    ws.set("labelstudio", "expert_review_project_id", 5)
    before = (ws.root / "workbench.toml").read_text()
    r = CliRunner().invoke(
        cli,
        ["-w", str(ws.root), "ls", "start", "--database", "postgresql://u:s3cret@h:7/d"],
    )
    assert r.exit_code == 1, r.output
    assert "project_id 3, expert_review_project_id 5" in r.output
    assert "live in sqlite" in r.output and "--new-projects" in r.output
    assert "s3cret" not in r.output
    assert (ws.root / "workbench.toml").read_text() == before
    assert not (ws.services_dir / postgres.URL_NAME).exists()


def test_new_projects_forgets_the_old_databases_projects_and_nothing_else(workspace_factory):
    ws = workspace_factory()
    ws.set_project(3, "species")
    ws.set_adjudication_project(4)
    ws.set("labelstudio", "url", "http://127.0.0.1:8080")
    db = postgres.resolve(ws, "postgresql://u:p@h:7/d")
    assert postgres.check_switch(ws, "postgresql://u:p@h:7/d", db, new_projects=True)
    assert ws.project_id() == 3  # nothing forgotten before Label Studio runs there
    postgres.forget_projects(ws)
    assert ws.project_id() is None and ws.adjudication_project_id() is None
    assert ws.get("labelstudio", "project_level") is None
    assert ws.get("labelstudio", "url") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("setting", "database"),
    [(None, None), (None, "sqlite"), ("sqlite", "SQLite"), ("postgresql://u@h:7/d", None)],
)
def test_the_same_database_or_none_named_is_no_switch(workspace_factory, setting, database):
    ws = workspace_factory()
    ws.set_project(3, "species")
    if setting:
        ws.set("labelstudio", "database", setting)
    db = postgres.resolve(ws, database) if database else None
    postgres.check_switch(ws, database, db, new_projects=False)  # no error
    assert ws.project_id() == 3


def test_a_switch_without_projects_needs_no_flag(workspace_factory):
    ws = workspace_factory()
    db = postgres.resolve(ws, "postgresql://u:p@h:7/d")
    postgres.check_switch(ws, "postgresql://u:p@h:7/d", db, new_projects=False)
    ws.set("labelstudio", "database", "postgresql://u@h:7/d")
    ws.set_project(3, "species")
    postgres.check_switch(ws, "postgresql://u:p@h:7/d", db, new_projects=False)
    with pytest.raises(postgres.DatabaseSwitch, match="live in postgresql://u@h:7/d"):
        postgres.check_switch(ws, "sqlite", None, new_projects=False)
