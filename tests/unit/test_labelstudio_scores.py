"""`write_scores` without a server: the one create-or-update of queue scores that
`wb prioritize`, `wb review send` and `wb push` share, and the project handle."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ls_fakes import RecordingClient as Client

from workbench.catalog.records import ImageRecord
from workbench.labelstudio.client import Connection
from workbench.labelstudio.ordering import (
    SCORE_TOLERANCE,
    UNCERTAINTY_SAMPLING,
    use_uncertainty_sampling,
    write_scores,
)
from workbench.labelstudio.project import NoProject, Project, open_project
from workbench.taxonomy import Taxonomy

pytestmark = pytest.mark.unit

V = "v002"


class Catalog:
    """Images 1-4; 1-3 have tasks 101-103; the model predicted boxes for 1 and 2 only."""

    def __init__(self, set_aside=()):
        self.recorded = []
        self.set_aside = set(set_aside)  # image ids no longer active

    def ls_task_map(self, project_id):
        return {1: 101, 2: 102, 3: 103}

    def predictions(self, version, image_ids):
        boxes = {1: [{"label": "tiger", "x1": 1, "y1": 1, "x2": 50, "y2": 40, "score": 0.9}], 2: []}
        return {i: b for i, b in boxes.items() if i in set(image_ids)}

    def images(self, ids, status=None):
        out = [
            ImageRecord(
                id=i,
                path=f"/d/{i}.jpg",
                width=100,
                height=80,
                status="duplicate" if i in self.set_aside else "active",
            )
            for i in ids
        ]
        return [im for im in out if status is None or im.status == status]

    def set_ls_prediction_version(self, project_id, task_ids, version):
        self.recorded.extend(task_ids)


def project(client):
    return Project(client, Connection("http://ls.test", "t"), 7, "species", Taxonomy.default())


def pred(pid, task, score, version=V):
    return SimpleNamespace(id=pid, task=task, model_version=version, score=score)


def test_scores_update_existing_predictions_and_create_missing_ones():
    client, catalog = (
        Client(
            [
                pred(11, 101, 0.3 + SCORE_TOLERANCE / 2),
                pred(12, 102, None),
                pred(13, 103, 0.9, version="v001"),
            ]
        ),
        Catalog(),
    )
    out = write_scores(project(client), catalog, V, {1: 0.3, 2: 0.5, 3: 0.1, 4: 0.0})
    assert (out.unchanged, out.updated, out.created, out.not_pushed) == (1, 1, 1, 1)
    assert client.updated == {12: {"score": 0.5}}  # an unscored prediction gets one
    (body,) = client.created.values()  # task 103: only another version's prediction
    assert list(client.created) == [103]
    assert (body["model_version"], body["score"], body["result"]) == (V, 0.1, [])
    assert catalog.recorded == [103]
    assert out.task_of == {1: 101, 2: 102, 3: 103}
    assert client.project_updates == []  # the queue itself is switched by the policy, last


def test_new_predictions_carry_the_models_boxes_and_the_given_score():
    client, catalog = Client(), Catalog()
    write_scores(project(client), catalog, V, {1: -2.0, 2: -1.0})
    (r,) = client.created[101]["result"]
    assert r["value"]["rectanglelabels"] == ["tiger"] and r["score"] == 0.9
    assert client.created[101]["score"] == -2.0 and client.created[102]["result"] == []


def test_given_predictions_are_not_listed_again_and_boxless_ones_can_stay_unrecorded():
    client, catalog = Client([pred(11, 101, 0.0)]), Catalog()
    out = write_scores(
        project(client), catalog, V, {1: 0.2, 3: 0.4}, existing={}, record_boxless=False
    )
    assert client.listed == 0 and out.created == 2 and client.updated == {}
    assert catalog.recorded == [101]  # 3 got a box-less prediction: push adds the boxes later


def test_no_score_leaves_the_one_the_prediction_derives_from_uncertainty():
    client = Client()
    write_scores(project(client), Catalog(), V, {1: None}, existing={}, uncertainty={1: 0.25})
    assert client.created[101]["score"] == pytest.approx(0.75)


def test_uncertainty_sampling_is_set_only_when_it_differs():
    client = Client()
    same = SimpleNamespace(model_version=V, sampling=UNCERTAINTY_SAMPLING)
    assert (
        use_uncertainty_sampling(project(client), V, same) is False and client.project_updates == []
    )
    assert use_uncertainty_sampling(project(client), V) is True
    assert client.project_updates == [{"model_version": V, "sampling": UNCERTAINTY_SAMPLING}]


def test_a_workspace_without_a_project_says_push_first(workspace_factory):
    ws = workspace_factory()
    with pytest.raises(NoProject, match="no Label Studio project yet: run `wb push`"):
        open_project(ws, client=Client())
    ws.set_project(12, "category")
    p = open_project(ws, client=Client())
    assert (p.id, p.level, p.classes) == (12, "category", ws.taxonomy.classes("category"))
    assert p.url == f"{p.conn.url}/projects/12"


def test_set_aside_images_are_never_scored():
    """Issue 15, item 8b: a duplicate's task would get a score (the most uncertain first)."""
    client, catalog = Client([pred(11, 101, 0.9)]), Catalog(set_aside={1, 3})
    out = write_scores(project(client), catalog, V, {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4})
    assert (out.set_aside, out.not_pushed, out.created, out.updated) == (2, 1, 1, 0)
    assert set(client.created) == {102} and client.updated == {}
    assert set(out.task_of) == {2}
