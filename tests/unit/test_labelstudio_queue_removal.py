"""`take_out_of_queue` without a server (issue 15, item 8b): the tasks of set-aside images
leave the queue; nobody's work is lost."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workbench.labelstudio.client import Connection
from workbench.labelstudio.ordering import take_out_of_queue
from workbench.labelstudio.project import Project
from workbench.taxonomy import Taxonomy

pytestmark = pytest.mark.unit


class Client:
    """Tasks 101-104: 102 annotated, 103 only skipped, 104 annotated after the last pull is
    not (the catalog recorded annotations for it)."""

    counts = {101: (0, 0), 102: (1, 0), 103: (0, 1), 104: (0, 0)}

    def __init__(self):
        self.deleted_tasks, self.deleted_predictions, self.read = [], [], []

    def get_task(self, task_id):
        self.read.append(task_id)
        total, cancelled = self.counts[task_id]
        return SimpleNamespace(id=task_id, total_annotations=total, cancelled_annotations=cancelled)

    def delete_task(self, task_id):
        self.deleted_tasks.append(task_id)

    def list_task_predictions(self, task_id):
        return [SimpleNamespace(id=task_id * 10), SimpleNamespace(id=task_id * 10 + 1)]

    def delete_prediction(self, prediction_id):
        self.deleted_predictions.append(prediction_id)


class Catalog:
    def __init__(self):
        self.tasks = {1: 101, 2: 102, 3: 103, 4: 104, 5: 105}
        self.versions = {101: "v001", 102: "v001", 103: "v001", 104: "v001", 105: "v001"}

    def ls_task_map(self, project_id):
        return dict(self.tasks)

    def ls_prediction_versions(self, project_id):
        return dict(self.versions)

    def ls_annotations(self, project_id):
        return {104: ["recorded by a pull"]}

    def forget_ls_tasks(self, project_id, task_ids):
        self.tasks = {i: t for i, t in self.tasks.items() if t not in set(task_ids)}

    def record_ls_tasks(self, project_id, rows):
        for image_id, task_id, version in rows:
            self.tasks[image_id] = task_id
            self.versions[task_id] = version


def project(client):
    return Project(client, Connection("http://ls.test", "t"), 7, "species", Taxonomy.default())


def test_unannotated_tasks_are_deleted_annotated_ones_kept_without_predictions():
    client, catalog = Client(), Catalog()
    out = take_out_of_queue(project(client), catalog, [1, 2, 3, 4, 9])  # 9: never pushed
    assert (out.deleted, out.kept, out.taken_out) == (1, 3, 4)
    assert client.deleted_tasks == [101]  # only the one nobody touched
    assert 104 not in client.read  # the catalog's record is enough
    assert sorted(client.deleted_predictions) == [1020, 1021, 1030, 1031, 1040, 1041]
    assert catalog.tasks == {2: 102, 3: 103, 4: 104, 5: 105}  # 101 forgotten
    assert [catalog.versions[t] for t in (102, 103, 104, 105)] == [None, None, None, "v001"]


def test_a_second_run_takes_nothing_out_again():
    client, catalog = Client(), Catalog()
    take_out_of_queue(project(client), catalog, [1, 2, 3, 4])
    client2 = Client()
    out = take_out_of_queue(project(client2), catalog, [1, 2, 3, 4])
    assert out.taken_out == 0 and client2.deleted_tasks == client2.deleted_predictions == []
