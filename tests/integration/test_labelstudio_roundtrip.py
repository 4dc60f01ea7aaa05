"""Push to and pull from a REAL Label Studio, once on SQLite and once on PostgreSQL
(`label_studio_any`: the session's servers)."""

from __future__ import annotations

import httpx
import pytest
from labelstudio_data import (
    MODEL_VERSION,
    add_images,
    add_promoted_model,
    annotation_rect,
    draw_images,
    imported_workspace,
)

from workbench.demo_data import generate_demo_data
from workbench.ingest import ingest
from workbench.labelstudio import connect, open_project, pull, push
from workbench.labelstudio.tasks import IMAGE_ID_FIELD, percent_rect
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration
N_IMAGES = 20
UNCERTAIN_EVERY = 3


@pytest.fixture(scope="module")
def pushed(label_studio_any, module_tmp):
    """The demo data set (24 images) ingested, 4 excluded, a promoted model's predictions
    for the 20 active ones, pushed once in batches of 7."""
    ws = Workspace.create(module_tmp.mktemp("ls-roundtrip") / "ws", Taxonomy.default())
    label_studio_any.attach(ws)
    catalog = ws.open_catalog()
    demo = label_studio_any.images_dir("roundtrip") / "demo"
    generate_demo_data(demo, seed=0, n_images=N_IMAGES + 4)
    ingest(ws, catalog, demo / "images", "folders")
    all_ids = [im.id for im in catalog.images()]
    catalog.set_status(all_ids[N_IMAGES:], "excluded", "test: only active images are pushed")
    ids = all_ids[:N_IMAGES]
    uncertain = set(ids[::UNCERTAIN_EVERY])
    predictions = add_promoted_model(catalog, ids, uncertain)
    client, conn = connect(ws)
    progress = []
    first = push(
        ws, catalog, client, conn, batch_size=7, on_progress=lambda d, t: progress.append((d, t))
    )
    yield {
        "ws": ws,
        "catalog": catalog,
        "client": client,
        "conn": conn,
        "ids": ids,
        "predictions": predictions,
        "uncertain": uncertain,
        "first": first,
        "progress": progress,
    }
    catalog.close()


def _tasks(label_studio_any, project_id):
    return list(label_studio_any.client.tasks.list(project=project_id, fields="all"))


def test_push_creates_one_task_per_image_carrying_the_model_boxes(pushed, label_studio_any):
    first, catalog = pushed["first"], pushed["catalog"]
    assert first.created == N_IMAGES and first.with_predictions == N_IMAGES
    assert pushed["progress"][-1] == (N_IMAGES, N_IMAGES) and len(pushed["progress"]) == 4
    tasks = _tasks(label_studio_any, first.project_id)
    assert len(tasks) == N_IMAGES
    assert sorted(t.data[IMAGE_ID_FIELD] for t in tasks) == sorted(pushed["ids"])
    for task in tasks:
        image = catalog.get_image(task.data[IMAGE_ID_FIELD])
        assert task.data["model_version"] == MODEL_VERSION
        (pred,) = task.predictions
        pred = pred if isinstance(pred, dict) else pred.dict()
        assert pred["model_version"] == MODEL_VERSION
        boxes = pushed["predictions"][image.id]
        assert [r["value"]["rectanglelabels"][0] for r in pred["result"]] == [
            b["label"] for b in boxes
        ]
        for r, b in zip(pred["result"], boxes):
            want = percent_rect(b, image.width, image.height)
            for key in ("x", "y", "width", "height"):
                assert r["value"][key] == pytest.approx(want[key], abs=1e-6)
            assert r["original_width"] == image.width and r["original_height"] == image.height
            assert r["score"] == pytest.approx(b["score"])
        if image.id in pushed["uncertain"]:
            assert pred["score"] == pytest.approx(0.25)  # 1 - uncertainty
        else:
            assert pred["score"] == pytest.approx(sum(b["score"] for b in boxes) / len(boxes))


def test_pushed_images_are_served_to_the_project(pushed, label_studio_any):
    task = _tasks(label_studio_any, pushed["first"].project_id)[0]
    r = httpx.get(
        label_studio_any.url + task.data["image"],
        headers={"Authorization": f"Token {label_studio_any.token}"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"


def test_repush_creates_no_second_task(pushed, label_studio_any):
    again = push(pushed["ws"], pushed["catalog"], pushed["client"], pushed["conn"])
    assert (again.created, again.already, again.project_id) == (
        0,
        N_IMAGES,
        pushed["first"].project_id,
    )
    assert len(_tasks(label_studio_any, again.project_id)) == N_IMAGES


def _copy_result(task):
    pred = task.predictions[0]
    pred = pred if isinstance(pred, dict) else pred.dict()
    return [{k: v for k, v in r.items() if k != "score"} for r in pred["result"]]


def _boxes(catalog, image_id):
    return [
        (b.label, b.x1, b.y1, b.x2, b.y2, b.source, b.annotation_id)
        for b in catalog.boxes_for(image_id)
    ]


def test_pull_brings_back_exactly_the_annotators_boxes(pushed, label_studio_any):
    ls, catalog, ws = label_studio_any.client, pushed["catalog"], pushed["ws"]
    tasks = {
        t.data[IMAGE_ID_FIELD]: t for t in _tasks(label_studio_any, pushed["first"].project_id)
    }
    ids = pushed["ids"]
    copied, edited, negative, deleted, skipped, twice = (
        ids[0],
        ids[1],
        ids[2],
        ids[3],
        ids[4],
        ids[5],
    )
    we, he = catalog.get_image(edited).width, catalog.get_image(edited).height

    a_copied = ls.annotations.create(id=tasks[copied].id, result=_copy_result(tasks[copied]))
    edited_px = ("tiger", 3.3, 50.7, 61.2, 94.9)
    ls.annotations.create(id=tasks[edited].id, result=[annotation_rect(*edited_px, we, he)])
    ls.annotations.create(id=tasks[negative].id, result=[])
    gone = ls.annotations.create(id=tasks[deleted].id, result=_copy_result(tasks[deleted]))
    ls.annotations.delete(id=gone.id)
    ls.annotations.create(id=tasks[skipped].id, result=[], was_cancelled=True)
    w, h = catalog.get_image(twice).width, catalog.get_image(twice).height
    ls.annotations.create(
        id=tasks[twice].id, result=[annotation_rect("pangolin", 1, 1, 20, 20, w, h)]
    )
    later = ls.annotations.create(
        id=tasks[twice].id,
        result=[
            annotation_rect("elephant", 10, 10, 40, 30, w, h),
            annotation_rect("tiger", 50, 5, 90, 60, w, h),
        ],
    )

    result = pull(open_project(ws, pushed["client"], pushed["conn"]), catalog)

    assert (result.updated_images, result.negatives, result.skipped) == (4, 1, 1)
    want = pushed["predictions"][copied]
    got = catalog.boxes_for(copied)
    assert [b.label for b in got] == [b["label"] for b in want]
    for b, p in zip(got, want):
        assert all(abs(g - e) <= 0.5 for g, e in zip(b.xyxy, (p["x1"], p["y1"], p["x2"], p["y2"])))
        assert (b.source, b.annotation_id, b.annotator) == (
            "labelstudio",
            a_copied.id,
            "admin@workbench.local",
        )
    (b,) = catalog.boxes_for(edited)
    assert b.label == "tiger" and all(abs(g - e) <= 0.5 for g, e in zip(b.xyxy, edited_px[1:]))
    assert catalog.boxes_for(negative) == [] and catalog.get_image(negative).annotated
    assert catalog.boxes_for(deleted) == [] and not catalog.get_image(deleted).annotated
    assert catalog.boxes_for(skipped) == [] and not catalog.get_image(skipped).annotated
    assert sorted(b.label for b in catalog.boxes_for(twice)) == ["elephant", "tiger"]
    assert {b.annotation_id for b in catalog.boxes_for(twice)} == {later.id}
    (d,) = result.disagreements
    assert (d.image_id, d.chosen_annotation, d.others[0]["n_boxes"]) == (twice, later.id, 1)

    before = {i: _boxes(catalog, i) for i in ids}
    stamps = catalog.db.execute("SELECT id, created_at FROM boxes ORDER BY id").fetchall()
    again = pull(open_project(ws, pushed["client"], pushed["conn"]), catalog)
    assert again.updated_images == 0 and again.cleared == 0
    assert {i: _boxes(catalog, i) for i in ids} == before
    assert catalog.db.execute("SELECT id, created_at FROM boxes ORDER BY id").fetchall() == stamps

    # an update replaces, a deletion disappears
    ls.annotations.update(id=later.id, result=[annotation_rect("pangolin", 2, 3, 30, 33, w, h)])
    ls.annotations.delete(id=a_copied.id)
    third = pull(open_project(ws, pushed["client"], pushed["conn"]), catalog)
    assert (third.updated_images, third.cleared) == (1, 1)
    assert [(b.label, round(b.x1), round(b.y2)) for b in catalog.boxes_for(twice)] == [
        ("pangolin", 2, 33)
    ]
    assert catalog.boxes_for(copied) == [] and not catalog.get_image(copied).annotated


def test_push_interrupted_after_import_finishes_without_duplicates(
    label_studio_any, module_tmp, monkeypatch
):
    ws = Workspace.create(module_tmp.mktemp("ls-interrupt") / "ws", Taxonomy.default())
    label_studio_any.attach(ws)
    catalog = ws.open_catalog()
    add_images(catalog, draw_images(label_studio_any.images_dir("interrupt"), 6, rotated=()))
    client, conn = connect(ws)
    real_record = type(catalog).record_ls_tasks
    calls = []

    def dies_on_second_batch(self, *args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed after Label Studio imported the batch")
        return real_record(self, *args, **kw)

    monkeypatch.setattr(type(catalog), "record_ls_tasks", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        push(ws, catalog, client, conn, batch_size=2)
    monkeypatch.setattr(type(catalog), "record_ls_tasks", real_record)
    project_id = ws.get("labelstudio", "project_id")
    assert len(catalog.ls_task_map(project_id)) == 2  # recorded: first batch only

    resumed = push(ws, catalog, client, conn, batch_size=2)

    assert (resumed.reconciled, resumed.created, resumed.already) == (2, 2, 4)
    tasks = _tasks(label_studio_any, project_id)
    assert len(tasks) == 6 and len({t.data[IMAGE_ID_FIELD] for t in tasks}) == 6
    assert catalog.ls_task_map(project_id) == {t.data[IMAGE_ID_FIELD]: t.id for t in tasks}
    catalog.close()


def test_an_exif_rotated_image_round_trips_in_the_frame_the_annotator_sees(
    label_studio_any, tmp_path
):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio_any.attach(ws)
    catalog = ws.open_catalog()
    (image_id,) = add_images(
        catalog, draw_images(label_studio_any.images_dir("exif"), 1, rotated=(0,))
    )
    image = catalog.get_image(image_id)
    assert (image.width, image.height) == (64, 96)  # stored 96x64 with EXIF orientation 6
    (box,) = add_promoted_model(catalog, [image_id])[image_id]
    client, conn = connect(ws)
    project_id = push(ws, catalog, client, conn).project_id
    (task,) = _tasks(label_studio_any, project_id)
    pred = (
        task.predictions[0] if isinstance(task.predictions[0], dict) else task.predictions[0].dict()
    )
    (r,) = pred["result"]
    assert (r["original_width"], r["original_height"]) == (64, 96)
    assert r["value"]["x"] == pytest.approx(box["x1"] / 64 * 100)
    assert r["value"]["height"] == pytest.approx((box["y2"] - box["y1"]) / 96 * 100)

    label_studio_any.client.annotations.create(id=task.id, result=_copy_result(task))
    pull(open_project(ws, client, conn), catalog)

    (got,) = catalog.boxes_for(image_id)
    want = (box["x1"], box["y1"], box["x2"], box["y2"])
    assert all(abs(g - e) <= 0.5 for g, e in zip(got.xyxy, want))
    catalog.close()


def test_imported_boxes_arrive_drawn_and_a_pull_keeps_them_until_someone_edits(
    label_studio_any, tmp_path
):
    """Boxes from a COCO import go to Label Studio as the task's annotation (annotators
    see them instead of drawing over them); pulling them back unchanged keeps the
    catalog's boxes (their source and finer labels); an edit replaces them."""
    ws, catalog, images = imported_workspace(label_studio_any, tmp_path, "imported", seed=3)
    assert images and all(im.annotated for im in images.values())
    before = {i: _boxes(catalog, i) for i in images}
    tax = ws.taxonomy

    client, conn = connect(ws)
    result = push(ws, catalog, client, conn)
    assert (result.created, result.with_annotations) == (len(images), len(images))
    tasks = {t.data[IMAGE_ID_FIELD]: t for t in _tasks(label_studio_any, result.project_id)}
    assert set(tasks) == set(images)
    for image_id, task in tasks.items():
        (ann,) = task.annotations
        ann = ann if isinstance(ann, dict) else ann.dict()
        got = sorted(
            (r["value"]["rectanglelabels"][0], round(r["value"]["x"], 3)) for r in ann["result"]
        )
        want = sorted(
            (tax.species_of(b.label), round(b.x1 / images[image_id].width * 100, 3))
            for b in catalog.boxes_for(image_id)
        )
        assert got == want
        assert "COCO import" in task.data["model_hint"]

    first = pull(open_project(ws, client, conn), catalog)
    assert (first.updated_images, first.unchanged) == (0, len(images))
    assert {i: _boxes(catalog, i) for i in images} == before  # source "import", fine labels
    assert any(b[0] != tax.species_of(b[0]) for bs in before.values() for b in bs)

    edited = next(i for i in images if before[i])
    w, h = images[edited].width, images[edited].height
    ann = tasks[edited].annotations[0]
    ann_id = ann["id"] if isinstance(ann, dict) else ann.id
    label_studio_any.client.annotations.update(
        id=ann_id, result=[annotation_rect("tiger", 1, 2, 30, 40, w, h)]
    )
    # deleting an untouched imported annotation takes nothing away (a negative included)
    negative = next((i for i in images if not before[i]), None)
    kept = next(i for i in images if i != edited and before[i])
    removed = [kept] + ([negative] if negative is not None else [])
    for image_id in removed:
        ann = tasks[image_id].annotations[0]
        label_studio_any.client.annotations.delete(
            id=ann["id"] if isinstance(ann, dict) else ann.id
        )
    second = pull(open_project(ws, client, conn), catalog)
    assert (second.updated_images, second.cleared) == (1, 0)
    (b,) = catalog.boxes_for(edited)
    assert (b.label, b.source, round(b.x2), round(b.y2)) == ("tiger", "labelstudio", 30, 40)
    assert all(_boxes(catalog, i) == before[i] for i in images if i != edited)
    assert all(catalog.get_image(i).annotated for i in removed)
    catalog.close()


def test_tasks_of_set_aside_images_leave_the_queue_on_the_next_push(label_studio_any, tmp_path):
    """Issue 15, item 8b: images set aside after their push (duplicate, conflict, excluded)
    kept their tasks in the queue, the most uncertain first. The next push deletes the
    tasks nobody annotated and keeps an annotated one without predictions; uncertainty
    sampling then hands out the most uncertain ACTIVE image."""
    from workbench.labelstudio.ordering import UNCERTAINTY_SAMPLING

    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio_any.attach(ws)
    catalog = ws.open_catalog()
    ids = add_images(catalog, draw_images(label_studio_any.images_dir("set-aside"), 6, rotated=()))
    add_promoted_model(catalog, ids, uncertain={ids[0], ids[3]})  # task score 0.25, else >0.7
    client, conn = connect(ws)
    first = push(ws, catalog, client, conn)
    pid, tasks = first.project_id, catalog.ls_task_map(first.project_id)
    client.update_project(pid, model_version=MODEL_VERSION, sampling=UNCERTAINTY_SAMPLING)
    assert first.created == 6 and first.taken_out == 0
    w, h = 96, 64
    client.create_annotation(tasks[ids[1]], [annotation_rect("tiger", 10, 8, 50, 40, w, h)])

    catalog.set_status([ids[0]], "duplicate", "test")
    catalog.set_status([ids[1]], "conflict", "test")
    catalog.set_status([ids[2]], "excluded", "test")
    second = push(ws, catalog, client, conn)
    assert (second.taken_out, second.taken_out_deleted, second.taken_out_kept) == (3, 2, 1)
    left = {t.data[IMAGE_ID_FIELD]: t for t in _tasks(label_studio_any, pid)}
    assert set(left) == {ids[1], ids[3], ids[4], ids[5]}
    assert client.list_task_predictions(tasks[ids[1]]) == []  # kept for its annotation
    assert len(left[ids[1]].annotations) == 1
    assert set(catalog.ls_task_map(pid)) == set(left)
    nxt = client.next_task(pid)
    assert nxt["data"][IMAGE_ID_FIELD] == ids[3]  # before the fix: ids[0], a duplicate

    again = push(ws, catalog, client, conn)
    assert (again.taken_out, again.created) == (0, 0)
    catalog.set_status([ids[0]], "active")  # set back: it gets a task again
    back = push(ws, catalog, client, conn)
    assert back.created == 1 and back.with_predictions == 1 and back.taken_out == 0
    catalog.close()
