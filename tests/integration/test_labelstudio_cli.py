"""`wb ls`, `wb push`, `wb pull` through the CLI against the session's real Label Studio,
including the errors a user must be able to act on (exit code 1 and the message)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from labelstudio_data import add_images, draw_images

from workbench.cli import cli
from workbench.services import free_port
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def small_ws(label_studio, tmp_path, request):
    """A workspace with 3 images under the served root, attached to the server."""
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    with ws.open_catalog() as catalog:
        add_images(catalog, draw_images(label_studio.images_dir(request.node.name), 3, rotated=()))
    return ws


def wb(ws, *args, env=None):
    clean = {"WB_LS_TOKEN": None, "WB_LS_URL": None, "WB_LS_DOCUMENT_ROOT": None, **(env or {})}
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], env=clean)


def _project_id(ws) -> int:
    """As the CLI recorded it in workbench.toml (re-read: the CLI wrote it)."""
    return Workspace.open(ws.root).get("labelstudio", "project_id")


def test_push_pull_and_status_through_the_cli(small_ws, label_studio, tmp_path):
    r = wb(small_ws, "push")
    assert r.exit_code == 0, r.output
    assert "pushed 3 new tasks" in r.output and label_studio.url in r.output

    r = wb(small_ws, "ls", "status", "--json")
    assert r.exit_code == 0, r.output
    status = json.loads(r.stdout)
    assert status == {
        "url": label_studio.url,
        "running": True,
        "project_id": _project_id(small_ws),
        "tasks": 3,
        "database": "sqlite",
    }

    task = next(iter(label_studio.client.tasks.list(project=status["project_id"])))
    label_studio.client.annotations.create(
        id=task.id,
        result=[
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "value": {
                    "x": 10,
                    "y": 10,
                    "width": 50,
                    "height": 50,
                    "rotation": 0,
                    "rectanglelabels": ["tiger"],
                },
            }
        ],
    )
    out = tmp_path / "annotated.json"
    r = wb(small_ws, "pull", "--json", "--export", "coco", str(out))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["updated_images"], summary["boxes"], summary["export"]["images"]) == (1, 1, 1)
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 1 and len(coco["annotations"]) == 1

    # `wb status` shows what that pull changed (issue 15, item 8b)
    r = wb(small_ws, "status", "--json")
    assert r.exit_code == 0, r.output
    last = json.loads(r.stdout)["last_pull"]
    assert (last["updated_images"], last["boxes"], last["tasks"]) == (1, 1, 3)
    assert last["project_id"] == _project_id(small_ws) and last["disagreements"] == 0
    r = wb(small_ws, "status")
    assert "1 images updated (1 boxes, 0 negatives)" in r.output, r.output
    assert "1 of 3 tasks annotated" in r.output


def test_wrong_token_is_a_clear_error(small_ws):
    r = wb(small_ws, "push", env={"WB_LS_TOKEN": "0" * 40})
    assert r.exit_code == 1
    assert "refused the API token" in r.output and "WB_LS_TOKEN" in r.output


def test_stopped_server_is_a_clear_error(small_ws):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("push",), ("pull",)):
        r = wb(small_ws, *args, "--ls-url", url)
        assert r.exit_code == 1
        assert f"not reachable at {url}" in r.output and "wb ls start" in r.output
    r = wb(small_ws, "ls", "status", "--json", env={"WB_LS_URL": url})
    assert r.exit_code == 0 and json.loads(r.stdout)["running"] is False


def test_deleted_project_is_a_clear_error_and_new_project_recovers(small_ws, label_studio):
    assert wb(small_ws, "push").exit_code == 0
    old = _project_id(small_ws)
    label_studio.client.projects.delete(id=old)

    r = wb(small_ws, "pull")
    assert r.exit_code == 1
    assert f"project {old} no longer exists" in r.output and "--new-project" in r.output

    r = wb(small_ws, "push", "--new-project")
    assert r.exit_code == 0, r.output
    new = _project_id(small_ws)
    assert new != old and label_studio.client.projects.get(id=new).task_number == 3


def test_image_outside_the_served_root_is_a_clear_error(label_studio, tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    with ws.open_catalog() as catalog:
        add_images(catalog, draw_images(tmp_path / "elsewhere", 2, rotated=()))
    r = wb(ws, "push")
    assert r.exit_code == 1
    assert "outside the folder Label Studio serves" in r.output and "wb ls start" in r.output


def test_ls_start_reuses_the_running_server_and_refuses_a_busy_port(label_studio, tmp_path):
    r = wb(label_studio.workspace, "ls", "start")
    assert r.exit_code == 0 and "already running" in r.output and label_studio.url in r.output

    other = Workspace.create(tmp_path / "other", Taxonomy.default())
    r = wb(other, "ls", "start", "--port", str(label_studio.port))
    assert r.exit_code == 1 and f"port {label_studio.port}" in r.output and "in use" in r.output


def test_push_says_how_many_tasks_of_set_aside_images_left_the_queue(small_ws, label_studio):
    r = wb(small_ws, "push")
    assert r.exit_code == 0, r.output
    with small_ws.open_catalog() as catalog:
        first = catalog.images()[0].id
        catalog.set_status([first], "duplicate", "test")
    r = wb(small_ws, "push")
    assert r.exit_code == 0, r.output
    assert (
        "took 1 tasks of set-aside images (duplicate, conflict, excluded, unreadable) out of "
        "the queue: 1 deleted (not annotated), 0 kept for their annotations with their "
        "predictions removed"
    ) in r.output
    assert label_studio.client.projects.get(id=_project_id(small_ws)).task_number == 2
    r = wb(small_ws, "push", "--json")
    assert json.loads(r.stdout)["taken_out"] == 0
