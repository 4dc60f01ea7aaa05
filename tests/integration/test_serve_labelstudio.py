"""`wb serve` against the REAL Label Studio: connect, let Label Studio ask for
predictions, order tasks by our uncertainty, and send annotation webhooks back."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import torch
from PIL import Image

from workbench.catalog import ImageRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CLASSES = ["cat", "dog"]
UNCERTAINTY = [0.2, 0.9, 0.4, 0.6]  # stored priorities: image 1 is the least certain


def draw(folder, n):
    paths = []
    for i in range(n):
        img = Image.new("RGB", (96, 72), (110 + 20 * i, 120, 130))
        img.paste((220, 40, 40) if i % 2 else (40, 40, 220), (8 + 6 * i, 10, 48 + 6 * i, 50))
        p = folder / f"photo {i}.png"
        img.save(p)
        paths.append(p)
    return paths


@pytest.fixture
def connected_project(label_studio, workspace_factory):
    """A fresh project (the /next lock lasts a day) pushed from a workspace whose
    promoted model is served on a free port and connected to the project."""
    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.connect import connect_backend
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.labelstudio import connect, open_project, push

    torch.set_num_threads(1)
    ws = workspace_factory(classes=CLASSES)
    label_studio.attach(ws)
    paths = draw(label_studio.images_dir(f"serve-{uuid.uuid4().hex[:8]}"), len(UNCERTAINTY))
    with ws.open_catalog() as catalog:
        ids = [
            catalog.add_image(
                ImageRecord(
                    id=None, path=str(p.resolve()), width=96, height=72, label=CLASSES[i % 2]
                )
            )
            for i, p in enumerate(paths)
        ]
        version = register_untrained_model(ws, catalog, CLASSES, promote=True)
        catalog.store_priorities(version, [(i, u, {}) for i, u in zip(ids, UNCERTAINTY)])
        client, conn = connect(ws)
        pushed = push(ws, catalog, client, conn, level="species", new_project=True)
        task_of = catalog.ls_task_map(pushed.project_id)
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=1)
    app = create_app(
        holder,
        ws.open_catalog,
        BackendSettings(
            taxonomy=ws.taxonomy,
            document_root=conn.document_root,
            ls_url=conn.url,
            ls_token=conn.token,
        ),
    )
    with running(app) as url:
        connected = connect_backend(open_project(ws, client, conn), url, version)
        yield {
            "ws": ws,
            "ls": label_studio.client,
            "ls_url": label_studio.url,
            "token": label_studio.token,
            "pid": pushed.project_id,
            "version": version,
            "paths": paths,
            "ids": ids,
            "task_of": task_of,
            "connected": connected,
        }


def test_label_studio_stores_our_predictions_asks_least_certain_first_and_sends_webhooks(
    connected_project,
):
    from workbench.detection.predict import Predictor
    from workbench.images import open_image

    p = connected_project
    ls, pid, version = p["ls"], p["pid"], p["version"]

    ls.actions.create(
        id="retrieve_tasks_predictions", project=pid, selected_items={"all": True, "excluded": []}
    )

    # every task has one prediction of our version with the boxes our model gives
    predictor = Predictor(p["ws"].models_dir / version)
    expected = predictor.predict([open_image(path) for path in p["paths"]])
    tasks = {t.id: t for t in ls.tasks.list(project=pid, fields="all")}
    assert len(tasks) == len(p["paths"])
    for image_id, dets, u in zip(p["ids"], expected, UNCERTAINTY):
        task = tasks[p["task_of"][image_id]]
        preds = [pr for pr in ls.predictions.list(task=task.id)]
        assert [pr.model_version for pr in preds] == [version]
        assert preds[0].score == pytest.approx(1 - u)
        got = [
            (
                r["value"]["rectanglelabels"][0],
                r["value"]["x"],
                r["value"]["y"],
                r["value"]["width"],
                r["value"]["height"],
            )
            for r in preds[0].result
        ]
        want = [
            (
                d.label,
                max(d.x1, 0) / 96 * 100,
                max(d.y1, 0) / 72 * 100,
                (min(d.x2, 96) - max(d.x1, 0)) / 96 * 100,
                (min(d.y2, 72) - max(d.y1, 0)) / 72 * 100,
            )
            for d in dets
        ]
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):
            assert g[0] == w[0] and g[1:] == pytest.approx(w[1:], abs=1e-4)
        assert all(r["from_name"] == "label" and r["to_name"] == "image" for r in preds[0].result)

    # the trap: the project's model version is ours, so uncertainty sampling is real
    project = ls.projects.get(id=pid)
    assert project.model_version == version
    assert str(project.sampling) == "Uncertainty sampling"
    backend = ls.ml.get(id=p["connected"].backend_id)
    assert backend.title == version
    nxt = httpx.get(
        f"{p['ls_url']}/api/projects/{pid}/next",
        headers={"Authorization": f"Token {p['token']}"},
        timeout=30,
    )
    assert nxt.status_code == 200, nxt.text
    least_certain = p["ids"][UNCERTAINTY.index(max(UNCERTAINTY))]
    assert nxt.json()["id"] == p["task_of"][least_certain]

    # an annotation reaches /webhook and is recorded in the catalog
    task_id = nxt.json()["id"]
    ann = ls.annotations.create(
        id=task_id,
        result=[
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": 96,
                "original_height": 72,
                "image_rotation": 0,
                "value": {
                    "x": 10,
                    "y": 10,
                    "width": 40,
                    "height": 50,
                    "rotation": 0,
                    "rectanglelabels": ["dog"],
                },
            }
        ],
    )
    deadline = time.monotonic() + 20
    events = []
    while time.monotonic() < deadline:
        with p["ws"].open_catalog() as catalog:
            events = [
                e
                for e in catalog.webhook_events(action="ANNOTATION_CREATED")
                if e.annotation_id == ann.id
            ]
        if events:
            break
        time.sleep(0.2)
    assert events, "Label Studio's ANNOTATION_CREATED webhook was not recorded"
    assert events[0].task_id == task_id and events[0].project_id == pid
