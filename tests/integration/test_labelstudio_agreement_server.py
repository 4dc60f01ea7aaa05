"""`wb push --overlap`, `wb pull`, `wb agreement`, `wb agreement send | pull` against the
REAL Label Studio (the session's `label_studio` server): two people annotate the same
task differently, the disagreement is scored, sent to an expert, and the expert's answer
becomes the image's ground truth."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from labelstudio_data import add_images, add_promoted_model, annotation_rect, draw_images

from workbench.cli import cli
from workbench.labelstudio.tasks import IMAGE_ID_FIELD
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration

ADMIN = "admin@workbench.local"


def wb(ws, *args):
    clean = {"WB_LS_TOKEN": None, "WB_LS_URL": None, "WB_LS_DOCUMENT_ROOT": None}
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], env=clean)


def second_annotator(ls) -> tuple[str, int]:
    """Another member of the organisation (email, user id). Annotations are created for
    them with ``completed_by``, as Label Studio's own import attributes work (the API
    keeps a given ``completed_by``; without it, the token's user)."""
    email = f"bob-{uuid.uuid4().hex[:8]}@workbench.local"
    user = ls.users.create(username=email.split("@")[0], email=email, password=uuid.uuid4().hex)
    return email, user.id


@pytest.fixture()
def overlap_ws(label_studio, tmp_path):
    """Three images with a promoted model's boxes, pushed with `--overlap 2`."""
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    catalog = ws.open_catalog()
    paths = draw_images(label_studio.images_dir(f"agreement-{uuid.uuid4().hex[:6]}"), 3, ())
    ids = add_images(catalog, paths)
    add_promoted_model(catalog, ids)
    catalog.close()
    r = wb(ws, "push", "--overlap", "2")
    assert r.exit_code == 0, r.output
    assert "asked Label Studio for 2 annotator(s) per task" in r.output
    yield ws, ids


def test_two_annotators_disagree_an_expert_settles_it(overlap_ws, label_studio):
    ws, ids = overlap_ws
    ls = label_studio.client
    pid = Workspace.open(ws.root).project_id()  # written by the `wb push` run
    assert ls.projects.get(id=pid).maximum_annotations == 2
    tasks = {t.data[IMAGE_ID_FIELD]: t for t in ls.tasks.list(project=pid, fields="all")}
    catalog = ws.open_catalog()
    w, h = catalog.get_image(ids[0]).width, catalog.get_image(ids[0]).height
    ivory = annotation_rect("elephant", 5, 6, 40, 30, w, h)
    claw = annotation_rect("tiger", 50, 10, 90, 60, w, h)
    bob, bob_id = second_annotator(ls)
    # image 0: bob misses the claw; image 1: they agree; image 2: the admin alone
    ls.annotations.create(id=tasks[ids[0]].id, result=[ivory, claw], lead_time=40.0)
    ls.annotations.create(id=tasks[ids[0]].id, result=[ivory], lead_time=20.0, completed_by=bob_id)
    ls.annotations.create(id=tasks[ids[1]].id, result=[ivory], lead_time=30.0)
    ls.annotations.create(id=tasks[ids[1]].id, result=[ivory], lead_time=10.0, completed_by=bob_id)
    ls.annotations.create(id=tasks[ids[2]].id, result=[claw])

    r = wb(ws, "pull")
    assert r.exit_code == 0, r.output
    assert "agreement: 2 tasks with several annotators, mean 0.83, 1 below 0.8" in r.output

    r = wb(ws, "agreement", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    score = {t["image_id"]: t["score"] for t in report["tasks"]}
    assert score[ids[0]] == pytest.approx(2 / 3)
    assert score[ids[1]] == pytest.approx(1.0)
    assert score[ids[2]] is None  # one annotator: n/a
    assert report["disagreements"] == [tasks[ids[0]].id]
    people = {a["annotator"]: a for a in report["annotators"]}
    assert set(people) == {ADMIN, bob}
    assert people[bob]["seconds_per_task"] == pytest.approx(15.0)
    assert people[ADMIN]["agreement"] == pytest.approx((2 / 3 + 1) / 2)

    r = wb(ws, "agreement", "send")
    assert r.exit_code == 0, r.output
    assert "sent 1 disagreements (agreement below 0.8) to expert review" in r.output
    again = wb(ws, "agreement", "send")
    assert "sent 0 disagreements" in again.output and "1 were sent before" in again.output
    review_pid = Workspace.open(ws.root).get("labelstudio", "expert_review_project_id")
    (review_task,) = ls.tasks.list(project=review_pid, fields="all")
    assert review_task.data[IMAGE_ID_FIELD] == ids[0]
    versions = sorted(
        (p if isinstance(p, dict) else p.dict())["model_version"] for p in review_task.predictions
    )
    assert versions == sorted([f"annotator {ADMIN}", f"annotator {bob}"])

    r = wb(ws, "agreement")
    assert "waiting (task" in r.output
    expert_claw = annotation_rect("tiger", 52, 12, 88, 58, w, h)
    ls.annotations.create(id=review_task.id, result=[ivory, expert_claw])
    r = wb(ws, "agreement", "pull")
    assert r.exit_code == 0, r.output
    assert "1 images' ground truth written (2 boxes)" in r.output
    catalog.close()
    catalog = ws.open_catalog()
    boxes = sorted((b.label, round(b.x1)) for b in catalog.boxes_for(ids[0]))
    assert boxes == [("elephant", 5), ("tiger", 52)]
    assert "answered by" in wb(ws, "agreement").output
    assert (
        "0 images' ground truth written (0 boxes), 1 unchanged"
        in wb(ws, "agreement", "pull").output
    )
    catalog.close()
