"""The order reaches annotators in a REAL Label Studio: after `wb push` and `wb prioritize`,
Label Studio's own next-task endpoint hands out the most uncertain image first.

Each test uses a fresh project: ``/next`` locks the task it returns for that user.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from prioritize_cases import VERSION, BrightnessModel, add_image, draw, register_model

from workbench.active.prioritize import PrioritizeConfig, prioritize
from workbench.active.selection import SelectionConfig
from workbench.labelstudio import connect, open_project, push
from workbench.labelstudio.ordering import UNCERTAINTY_SAMPLING, apply_order
from workbench.labelstudio.tasks import IMAGE_ID_FIELD
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration
# model confidence x 255 per image, all boxes said "elephant"; the third image is labelled
# a tiger product, so it disagrees with its own label: the most uncertain image although
# the fourth has the lowest box score (what `wb push` orders by before any priorities)
BRIGHTNESS = [240, 200, 225, 150, 210, 180]
LABELS = [
    "elephant_ivory",
    "elephant_ivory",
    "tiger_claw",
    "elephant_ivory",
    "elephant_skin",
    "elephant_ivory",
]


def _next_task(label_studio, project_id: int) -> dict:
    r = httpx.get(
        f"{label_studio.url}/api/projects/{project_id}/next",
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _workspace(label_studio, module_tmp, name: str):
    ws = Workspace.create(module_tmp.mktemp(name) / "ws", Taxonomy.default())
    label_studio.attach(ws)
    catalog = ws.open_catalog()
    folder = label_studio.images_dir(name)
    ids = [
        add_image(catalog, draw(folder / f"img{i}.png", b, (30 * i, 60)), label=label)
        for i, (b, label) in enumerate(zip(BRIGHTNESS, LABELS))
    ]
    register_model(ws, catalog)
    return ws, catalog, ids


def test_next_task_is_the_most_uncertain_image(label_studio, module_tmp):
    ws, catalog, ids = _workspace(label_studio, module_tmp, "prio-next")
    try:
        model = BrightnessModel()
        # the model's boxes are pushed first, as `wb retrain` leaves them: scores = box scores
        images = catalog.images(ids=ids)
        dets = model.predict([_open(im.path) for im in images])
        catalog.store_predictions(
            VERSION, {im.id: [d.to_dict() for d in ds] for im, ds in zip(images, dets)}
        )
        client, conn = connect(ws)
        pushed = push(ws, catalog, client, conn, new_project=True)
        assert pushed.created == len(ids) and pushed.with_predictions == len(ids)
        # a project left without a version and on sequential sampling: the trap the order
        # must get past (Label Studio refuses a version no prediction carries, so "" it is)
        client.update_project(pushed.project_id, model_version="", sampling="Sequential sampling")

        result = prioritize(
            ws, catalog, PrioritizeConfig(selection=SelectionConfig(batch=3)), predictor=model
        )
        order = apply_order(open_project(ws, client, conn), catalog, result.version)

        most_uncertain = result.ranked[0].image_id
        assert most_uncertain == ids[2] and result.ranked[1].image_id == ids[3]
        assert order.first_image_id == most_uncertain
        # push scored by mean box score, which is 1 - uncertainty except where the label disagrees
        assert (order.updated, order.unchanged, order.created, order.not_pushed) == (1, 5, 0, 0)
        project = label_studio.client.projects.get(id=pushed.project_id)
        assert project.model_version == VERSION and project.sampling == UNCERTAINTY_SAMPLING
        task = _next_task(label_studio, pushed.project_id)
        assert task["data"][IMAGE_ID_FIELD] == most_uncertain
    finally:
        catalog.close()


def test_tasks_pushed_without_predictions_get_the_model_boxes_and_the_order(
    label_studio, module_tmp
):
    ws, catalog, ids = _workspace(label_studio, module_tmp, "prio-create")
    try:
        client, conn = connect(ws)
        # pushed before any model was promoted: no predictions in Label Studio at all
        with catalog.atomic() as db:
            db.execute("UPDATE models SET promoted = 0")
        pushed = push(ws, catalog, client, conn, new_project=True)
        assert pushed.with_predictions == 0
        catalog.promote_model(VERSION)

        result = prioritize(ws, catalog, predictor=BrightnessModel())
        order = apply_order(open_project(ws, client, conn), catalog, result.version)
        assert (order.created, order.updated) == (len(ids), 0)
        tasks = list(label_studio.client.tasks.list(project=pushed.project_id, fields="all"))
        for t in tasks:
            (pred,) = [p if isinstance(p, dict) else p.dict() for p in t.predictions]
            assert pred["model_version"] == VERSION
            assert [r["value"]["rectanglelabels"] for r in pred["result"]] == [["elephant"]]
        task = _next_task(label_studio, pushed.project_id)
        assert task["data"][IMAGE_ID_FIELD] == result.ranked[0].image_id
        # a second run finds every score right and changes nothing
        again = apply_order(open_project(ws, client, conn), catalog, result.version)
        assert (again.created, again.updated, again.unchanged) == (0, 0, len(ids))
    finally:
        catalog.close()


def _open(path):
    from workbench.images import open_image

    return open_image(path)
