"""/webhook records Label Studio events in the catalog and answers at once; N new
annotations start one background retrain at a time."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

ANNOTATION_CREATED = {
    "action": "ANNOTATION_CREATED",
    "annotation": {"id": 41, "result": [], "completed_by": 1},
    "task": {"id": 7, "data": {"image": "/data/local-files/?d=a.jpg"}},
    "project": {"id": 3, "title": "p"},
}


class FakeRetrain:
    def __init__(self):
        self.calls = 0
        self.release = threading.Event()

    def __call__(self):
        self.calls += 1
        self.release.wait(10)
        return {"versions": ["v002"], "promoted": "v002"}


@pytest.fixture
def ws(workspace_factory):
    return workspace_factory(classes=["cat"])


def app_for(ws, retrainer=None):
    from workbench.backend import BackendSettings, ModelHolder, create_app

    holder = ModelHolder(lambda v: None, lambda: None, poll_seconds=60)
    return TestClient(create_app(holder, ws.open_catalog, BackendSettings(), retrainer=retrainer))


def test_events_are_recorded_with_their_ids(ws):
    client = app_for(ws)
    t0 = time.monotonic()
    res = client.post("/webhook", json=ANNOTATION_CREATED)
    elapsed = time.monotonic() - t0
    deleted = client.post(
        "/webhook",
        json={"action": "ANNOTATIONS_DELETED", "project": {"id": 3}, "annotations": [{"id": 41}]},
    )

    assert res.status_code == 200 and deleted.status_code == 200
    assert elapsed < 1.0  # Label Studio gives up after 1 s
    with ws.open_catalog() as catalog:
        events = catalog.webhook_events()
    assert [e.action for e in events] == ["ANNOTATION_CREATED", "ANNOTATIONS_DELETED"]
    assert (events[0].project_id, events[0].task_id, events[0].annotation_id) == (3, 7, 41)
    assert events[0].payload["annotation"]["id"] == 41
    assert events[1].annotation_id is None and res.json()["event_id"] == events[0].id


@pytest.mark.parametrize("body", [{}, {"action": ""}, {"action": 5}, []])
def test_events_without_an_action_are_422(ws, body):
    res = app_for(ws).post("/webhook", json=body)
    assert res.status_code == 422 and res.json()["error"] == "invalid request"


def test_n_annotations_start_one_retrain_at_a_time(ws):
    from workbench.backend import RetrainWorker

    fake = FakeRetrain()
    worker = RetrainWorker(fake, ws.open_catalog, threshold=2)
    client = app_for(ws, worker)

    first = client.post("/webhook", json=ANNOTATION_CREATED).json()
    second = client.post("/webhook", json=ANNOTATION_CREATED).json()
    # two more arrive while the first retrain runs: no second run in parallel
    during = [client.post("/webhook", json=ANNOTATION_CREATED).json() for _ in range(2)]
    fake.release.set()
    worker.join(10)

    assert not first["retrain_started"] and second["retrain_started"]
    assert not any(d["retrain_started"] for d in during)
    assert fake.calls == 1 and worker.last["status"] == "done"
    with ws.open_catalog() as catalog:
        assert len(catalog.pending_annotation_events()) == 2  # they count for the next run
        assert "v002" in catalog.get_meta("backend.last_retrain")
    # the next annotation finds 3 pending: the next run starts
    assert client.post("/webhook", json=ANNOTATION_CREATED).json()["retrain_started"]
    worker.join(10)
    assert fake.calls == 2


def test_a_failing_retrain_is_recorded_and_the_service_goes_on(ws):
    from workbench.backend import RetrainWorker

    def broken():
        raise RuntimeError("no training images")

    worker = RetrainWorker(broken, ws.open_catalog, threshold=1)
    client = app_for(ws, worker)
    assert client.post("/webhook", json=ANNOTATION_CREATED).json()["retrain_started"]
    worker.join(10)

    assert worker.last["status"] == "failed" and "no training images" in worker.last["error"]
    assert client.get("/health").status_code == 200
