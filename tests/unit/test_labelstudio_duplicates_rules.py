"""Which task of a repeated image stays, and which repeats `wb push` may delete
(labelstudio/duplicates.py): never one with annotations of its own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ls_fakes import TaskListingClient

from workbench.catalog.records import Box, ImageRecord
from workbench.labelstudio.duplicates import TaskRow, find_duplicates, remove_duplicates
from workbench.labelstudio.project import Project


def rect(label: str, x: float, w: int = 100, h: int = 50) -> dict:
    """A Label Studio rectangle covering pixels x..x+20, 10..30 of a w x h image."""
    return {
        "type": "rectanglelabels",
        "value": {
            "x": x / w * 100,
            "y": 10 / h * 100,
            "width": 20 / w * 100,
            "height": 20 / h * 100,
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


def task(task_id: int, image_id: int, *annotations) -> SimpleNamespace:
    return SimpleNamespace(
        id=task_id, data={"wb_image_id": image_id}, annotations=[dict(a) for a in annotations]
    )


def ann(*results, cancelled: bool = False) -> dict:
    return {"result": list(results), "was_cancelled": cancelled}


@pytest.fixture
def setting(workspace_factory):
    ws = workspace_factory(classes=["cat", "dog"])
    catalog = ws.open_catalog()
    plain = catalog.add_image(ImageRecord(id=None, path="/p/a.jpg", width=100, height=50))
    truth = catalog.add_image(
        ImageRecord(id=None, path="/p/b.jpg", width=100, height=50, label="cat"),
        boxes=[Box(label="cat", x1=5, y1=10, x2=25, y2=30, source="import")],
    )
    yield ws, catalog, plain, truth
    catalog.close()


def decide(ws, catalog, tasks, counts):
    client = TaskListingClient(tasks)
    project = Project(client, None, 1, ws.model_level(), ws.taxonomy)
    rows: dict[int, list[TaskRow]] = {}
    for t in tasks:
        rows.setdefault(t.data["wb_image_id"], []).append(TaskRow(t.id, counts.get(t.id, 0)))
    return client, project, find_duplicates(project, catalog, rows)


def test_without_annotations_the_oldest_stays_and_the_rest_may_go(setting):
    ws, catalog, plain, _ = setting
    client, _, d = decide(ws, catalog, [task(9, plain), task(4, plain), task(12, plain)], {})
    assert d.kept[plain].task_id == 4
    assert sorted(x.task_id for x in d.removable) == [9, 12] and d.annotated == []
    assert client.listings == 0  # nothing annotated: no task is read whole


def test_the_annotated_task_stays_even_when_it_is_the_newer(setting):
    ws, catalog, plain, _ = setting
    tasks = [task(4, plain), task(9, plain, ann(rect("cat", 5)))]
    _, _, d = decide(ws, catalog, tasks, {9: 1})
    assert d.kept[plain].task_id == 9 and [x.task_id for x in d.removable] == [4]


def test_a_repeat_with_other_boxes_or_a_skip_is_never_removable(setting):
    ws, catalog, plain, _ = setting
    tasks = [
        task(4, plain, ann(rect("cat", 5))),
        task(9, plain, ann(rect("dog", 50))),  # other boxes: a person's work
        task(11, plain, ann(cancelled=True)),  # a skip: a person's word too
        task(13, plain, ann(rect("cat", 5))),  # the same boxes as the kept task
    ]
    _, _, d = decide(ws, catalog, tasks, {4: 1, 9: 1, 11: 1, 13: 1})
    assert d.kept[plain].task_id == 4
    assert sorted(x.task_id for x in d.annotated) == [9, 11]
    assert [x.task_id for x in d.removable] == [13]
    assert all(x.own for x in d.annotated) and all(x.kept_task == 4 for x in d.annotated)


def test_copies_of_the_catalogs_truth_are_no_loss_and_the_oldest_copy_stays(setting):
    ws, catalog, _, truth = setting
    # both carry the ground truth push sent as an annotation (D1: 399 such doubles)
    tasks = [task(7, truth, ann(rect("cat", 5))), task(3, truth, ann(rect("cat", 5)))]
    _, _, d = decide(ws, catalog, tasks, {7: 1, 3: 1})
    assert d.kept[truth].task_id == 3 and [x.task_id for x in d.removable] == [7]


def test_a_person_correcting_one_copy_makes_that_one_stay(setting):
    ws, catalog, _, truth = setting
    tasks = [task(3, truth, ann(rect("cat", 5))), task(7, truth, ann(rect("cat", 60)))]
    _, _, d = decide(ws, catalog, tasks, {3: 1, 7: 1})
    assert d.kept[truth].task_id == 7  # it says something the catalog does not
    assert [x.task_id for x in d.removable] == [3]  # the untouched copy goes


def test_annotations_that_cannot_be_read_keep_the_task(setting):
    ws, catalog, plain, _ = setting
    # the id listing counts an annotation on 9, but reading it whole finds none
    tasks = [task(4, plain, ann(rect("cat", 5))), task(9, plain)]
    _, _, d = decide(ws, catalog, tasks, {4: 1, 9: 1})
    assert d.kept[plain].task_id == 4
    assert [x.task_id for x in d.annotated] == [9] and d.removable == []


def test_removal_is_one_bulk_request_and_forgets_the_records(setting):
    ws, catalog, plain, truth = setting
    tasks = [task(4, plain), task(9, plain), task(5, truth), task(6, truth)]
    catalog.record_ls_tasks(1, [(plain, 9, None), (truth, 5, None)])
    client, project, d = decide(ws, catalog, tasks, {})
    assert remove_duplicates(project, catalog, d) == 2
    assert sorted(client.deleted) == [6, 9]
    assert catalog.ls_task_map(1) == {truth: 5}  # 9 forgotten; push records 4 next


def test_a_server_that_does_not_count_annotations_gets_every_repeat_read_whole(setting):
    ws, catalog, plain, _ = setting
    tasks = [task(4, plain), task(9, plain, ann(rect("dog", 50))), task(12, plain)]
    client = TaskListingClient(tasks)
    project = Project(client, None, 1, ws.model_level(), ws.taxonomy)
    rows = {plain: [TaskRow(t.id, None) for t in tasks]}  # the listing had no counts
    d = find_duplicates(project, catalog, rows)
    assert client.listings == 1
    assert d.kept[plain].task_id == 9  # the one found annotated when read
    assert sorted(x.task_id for x in d.removable) == [4, 12]
