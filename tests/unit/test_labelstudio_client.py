"""Errors from Label Studio become messages that say what to do (no server needed:
the SDK talks to an httpx mock transport or to a port where nothing listens)."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.labelstudio.client import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioRequestError,
    LabelStudioUnreachable,
    ProjectMissing,
    resolve_connection,
)
from workbench.services import free_port


def client_answering(status: int, body: dict) -> LabelStudioClient:
    from label_studio_sdk import LabelStudio

    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    sdk = LabelStudio(
        base_url="http://ls.test", api_key="t" * 40, httpx_client=httpx.Client(transport=transport)
    )
    return LabelStudioClient("http://ls.test", "t" * 40, sdk=sdk)


def test_401_says_the_token_was_refused_and_how_to_set_one():
    client = client_answering(401, {"detail": "Invalid token."})
    with pytest.raises(LabelStudioAuthError, match="refused the API token .*WB_LS_TOKEN"):
        client.whoami()


def test_404_on_a_project_says_it_was_deleted_and_offers_a_new_one():
    client = client_answering(404, {"detail": "No Project matches the given query."})
    with pytest.raises(ProjectMissing, match="project 12 no longer exists .*--new-project"):
        client.get_project(12)


def test_a_validation_error_carries_label_studios_reason():
    client = client_answering(
        400, {"detail": "Validation error", "validation_errors": {"label_config": ["bad"]}}
    )
    with pytest.raises(LabelStudioRequestError, match="bad"):
        client.create_project("t", "<View/>")


def test_nothing_listening_names_the_url_and_wb_ls_start():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LabelStudioUnreachable, match=rf"not reachable at {url}.*wb ls start"):
        LabelStudioClient(url, "t" * 40).whoami()


def test_connection_prefers_option_then_env_then_workspace(workspace_factory, monkeypatch):
    ws = workspace_factory(classes=["a"])
    monkeypatch.delenv("WB_LS_URL", raising=False)
    monkeypatch.delenv("WB_LS_TOKEN", raising=False)
    assert resolve_connection(ws).url == "http://127.0.0.1:8080"
    monkeypatch.setenv("WB_LS_URL", "http://env:1/")
    assert resolve_connection(ws).url == "http://env:1"
    assert resolve_connection(ws, "http://opt:2").url == "http://opt:2"
    monkeypatch.setenv("WB_LS_TOKEN", "pat")
    assert resolve_connection(ws).token == "pat"


def test_cli_ls_status_json_when_nothing_runs(workspace_factory):
    ws = workspace_factory(classes=["a"])
    url = f"http://127.0.0.1:{free_port()}"
    r = CliRunner().invoke(
        cli,
        ["-w", str(ws.root), "ls", "status", "--json", "--ls-url", url],
        env={"WB_LS_URL": None, "WB_LS_TOKEN": None},
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "url": url,
        "running": False,
        "project_id": None,
        "tasks": None,
        "database": "sqlite",
    }


def test_cli_push_with_the_server_down_exits_1_with_the_fix(workspace_factory):
    ws = workspace_factory(classes=["a"])
    url = f"http://127.0.0.1:{free_port()}"
    r = CliRunner().invoke(
        cli, ["-w", str(ws.root), "push", "--ls-url", url], env={"WB_LS_TOKEN": None}
    )
    assert r.exit_code == 1
    assert f"Label Studio is not reachable at {url}" in r.output and "wb ls start" in r.output


def test_cli_ls_stop_when_nothing_runs(workspace_factory):
    ws = workspace_factory(classes=["a"])
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "ls", "stop"])
    assert r.exit_code == 0 and "not running" in r.output


def test_cli_pull_without_a_project_says_push_first(workspace_factory, monkeypatch):
    ws = workspace_factory(classes=["a"])
    # a server that answers whoami, so the missing project is the first problem
    monkeypatch.setattr(LabelStudioClient, "whoami", lambda self: {"id": 1})
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "pull"], env={"WB_LS_TOKEN": None})
    assert r.exit_code == 1 and "run `wb push` first" in r.output


def test_the_next_task_call_names_the_url_and_wb_ls_start_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LabelStudioUnreachable, match=rf"not reachable at {url}.*next task"):
        LabelStudioClient(url, "t" * 40).next_task(3)


def test_ml_backend_calls_translate_errors_too():
    client = client_answering(404, {"detail": "Not found."})
    with pytest.raises(ProjectMissing, match="project 4 no longer exists"):
        client.ml_backends(4)
    with pytest.raises(LabelStudioAuthError):
        client_answering(401, {"detail": "Invalid token."}).create_annotation(5, [])
