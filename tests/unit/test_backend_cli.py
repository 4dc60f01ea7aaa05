"""`wb serve`: options, the app it builds, and clear failures."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient


def invoke(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", *args])


@pytest.fixture
def served_ws(workspace_factory, monkeypatch):
    """A workspace with a promoted untrained model; uvicorn replaced by a recorder."""
    import workbench.backend
    from workbench.backend.tiny_models import register_untrained_model

    ws = workspace_factory(classes=["cat", "dog"])
    with ws.open_catalog() as catalog:
        version = register_untrained_model(ws, catalog, ["cat", "dog"], promote=True)
    calls = []
    monkeypatch.setattr(workbench.backend, "run", lambda app, **kw: calls.append((app, kw)))
    for key in ("WB_LS_TOKEN", "WB_LS_URL", "WB_LS_DOCUMENT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    return ws, version, calls


def test_serve_builds_the_service_on_localhost_with_basic_auth(served_ws):
    ws, version, calls = served_ws
    res = invoke(ws, "--port", "9191", "--auth", "ls:pw", "--retrain-after", "5")

    assert res.exit_code == 0, res.output
    assert f"serving {version} on http://127.0.0.1:9191" in res.output
    ((app, kw),) = calls
    assert kw["host"] == "127.0.0.1" and kw["port"] == 9191 and kw["on_started"] is None
    client = TestClient(app)
    assert client.get("/health").json()["model_version"] == version
    assert client.post("/setup", json={}).status_code == 401
    assert client.post("/setup", json={}, auth=("ls", "pw")).json() == {"model_version": version}
    assert app.state.retrainer.threshold == 5


def test_serve_refuses_a_malformed_auth_value(served_ws):
    ws, _, calls = served_ws
    res = invoke(ws, "--auth", "no-colon")
    assert res.exit_code == 2 and "expected USER:PASSWORD" in res.output and not calls


def test_serve_refuses_connect_with_a_bearer_token(served_ws):
    ws, _, calls = served_ws
    res = invoke(ws, "--connect", "--token", "t")
    assert res.exit_code == 2 and "basic auth only" in res.output and not calls


def test_serve_connect_needs_a_promoted_model(workspace_factory, monkeypatch):
    import workbench.backend

    monkeypatch.setattr(workbench.backend, "run", lambda app, **kw: None)
    ws = workspace_factory(classes=["cat"])
    res = invoke(ws, "--connect")
    assert res.exit_code == 1
    assert "--connect needs a promoted model" in res.output


def test_serve_fetches_images_from_the_hosts_the_workspace_allows(served_ws):
    ws, _, calls = served_ws
    ws.set("serve", "allowed_image_hosts", ["images.internal:9000", "10.0.0.0/8"])
    res = invoke(ws)

    assert res.exit_code == 0, res.output
    ((app, _),) = calls
    client = TestClient(app)
    body = {"tasks": [{"id": 1, "data": {"image": "http://192.168.7.7/a.jpg"}}]}
    (item,) = client.post("/predict", json=body).json()["results"]
    assert item["status"] == 403
    assert "192.168.7.7: a private address" in item["error"]
    assert "[serve] allowed_image_hosts" in item["error"]


@pytest.mark.parametrize(
    "value, words",
    [
        ("images.internal", "must be a list of host names"),
        (["http://images.internal/x"], "'http://images.internal/x' is not a host name"),
    ],
)
def test_serve_refuses_a_malformed_allowed_image_hosts(served_ws, value, words):
    ws, _, calls = served_ws
    ws.set("serve", "allowed_image_hosts", value)
    res = invoke(ws)

    assert res.exit_code == 1 and words in res.output and not calls
    assert "allowed_image_hosts" in res.output and "Traceback" not in res.output
