"""The ML backend app through FastAPI's TestClient: protocol, coordinates, safety."""

from __future__ import annotations

import base64
import os

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from workbench.backend.openapi import BAD_BODY
from workbench.catalog import ImageRecord
from workbench.labelstudio.config import detection_config

CLASSES = ["cat", "dog"]
CUSTOM_CONFIG = """<View>
  <Image name="photo" value="$picture"/>
  <RectangleLabels name="bbox" toName="photo">
    <Label value="cat"/><Label value="dog"/>
  </RectangleLabels>
</View>"""


def url(rel: str) -> str:
    return f"/data/local-files/?d={rel}"


@pytest.fixture(scope="module")
def served(module_tmp):
    """A workspace with 3 images under a served root (one EXIF-rotated JPEG), an
    untrained promoted model and a second registered version."""
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.images import probe_image
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(1)
    root = module_tmp.mktemp("backend")
    ws = Workspace.create(root / "ws", Taxonomy.flat(CLASSES))
    files = root / "files"
    (files / "imgs").mkdir(parents=True)
    (root / "secret.png").write_bytes(b"not for you")
    paths = []
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200), (30, 200, 30)]):
        img = Image.new("RGB", (96, 64), (120, 120, 120))
        img.paste(colour, (10 + 10 * i, 8, 50 + 10 * i, 40))
        p = files / "imgs" / f"img {i}.jpg"
        if i == 2:
            exif = Image.Exif()
            exif[0x0112] = 6  # shown rotated: 64 wide, 96 high
            img.save(p, exif=exif)
        else:
            img.save(p)
        paths.append(p)
    os.symlink(root / "secret.png", files / "imgs" / "link.png")
    with ws.open_catalog() as catalog:
        ids = [
            catalog.add_image(
                ImageRecord(
                    id=None,
                    path=str(p.resolve()),
                    width=probe_image(p).width,
                    height=probe_image(p).height,
                    label=CLASSES[i % 2],
                )
            )
            for i, p in enumerate(paths)
        ]
        first = register_untrained_model(ws, catalog, CLASSES, seed=0, promote=True)
        second = register_untrained_model(ws, catalog, CLASSES, seed=1)
    return {"ws": ws, "files": files, "paths": paths, "ids": ids, "first": first, "second": second}


def make_client(served, **settings_kw) -> TestClient:
    from workbench.backend import BackendSettings, ModelHolder, create_app

    ws = served["ws"]
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    settings = BackendSettings(taxonomy=ws.taxonomy, document_root=served["files"], **settings_kw)
    return TestClient(create_app(holder, ws.open_catalog, settings))


@pytest.fixture(scope="module")
def client(served):
    return make_client(served)


def predict_body(*rels, config=None, key="image"):
    return {
        "tasks": [{"id": i + 1, "data": {key: url(r)}} for i, r in enumerate(rels)],
        "project": "1.123",
        "label_config": config or detection_config(CLASSES),
    }


def test_health_and_setup_report_the_promoted_version(client, served):
    for path in ("/", "/health"):
        res = client.get(path)
        assert res.status_code == 200
        assert res.json()["status"] == "UP"
        assert res.json()["model_version"] == served["first"]
    res = client.post(
        "/setup",
        json={
            "project": "1.2",
            "schema": "<View/>",
            "hostname": "http://localhost:8080",
            "access_token": "x",
        },
    )
    assert res.status_code == 200 and res.json() == {"model_version": served["first"]}


def test_predict_returns_the_models_boxes_in_percent_with_the_configs_names(client, served):
    from workbench.active.uncertainty import UncertaintyConfig, score_image
    from workbench.detection.predict import Predictor
    from workbench.images import open_image

    res = client.post(
        "/predict",
        json=predict_body(
            "imgs/img 0.jpg", "imgs/img%202.jpg", config=CUSTOM_CONFIG, key="picture"
        ),
    )

    assert res.status_code == 200, res.text
    out = res.json()
    assert out["model_version"] == served["first"]
    assert [r["task"] for r in out["results"]] == [1, 2]
    predictor = Predictor(served["ws"].models_dir / served["first"])
    images = [open_image(served["paths"][0]), open_image(served["paths"][2])]
    expected = predictor.predict(images)
    for item, image, dets, label in zip(out["results"], images, expected, ["cat", "cat"]):
        w, h = image.size
        assert item["model_version"] == served["first"]
        assert len(item["result"]) == len(dets) > 0
        for region, det in zip(item["result"], dets):
            assert region["from_name"] == "bbox" and region["to_name"] == "photo"
            assert (region["original_width"], region["original_height"]) == (w, h)
            v = region["value"]
            assert v["rectanglelabels"] == [det.label]
            assert v["x"] == pytest.approx(max(det.x1, 0) / w * 100, abs=1e-6)
            assert v["y"] == pytest.approx(max(det.y1, 0) / h * 100, abs=1e-6)
            assert v["x"] + v["width"] == pytest.approx(min(det.x2, w) / w * 100, abs=1e-6)
            assert region["score"] == pytest.approx(det.score)
        u = score_image(
            [d.to_dict() for d in dets], UncertaintyConfig(), label, CLASSES, CLASSES
        ).uncertainty
        assert item["score"] == pytest.approx(1 - u)
    # the EXIF-rotated image is measured in its shown frame
    assert out["results"][1]["result"][0]["original_width"] == 64
    assert out["results"][1]["result"][0]["original_height"] == 96


def test_stored_priorities_set_the_task_score(served):
    with served["ws"].open_catalog() as catalog:
        catalog.store_priorities(served["first"], [(served["ids"][1], 0.875, {})])
    try:
        res = make_client(served).post("/predict", json=predict_body("imgs/img 1.jpg"))
        assert res.status_code == 200
        assert res.json()["results"][0]["score"] == pytest.approx(0.125)
    finally:
        with served["ws"].open_catalog() as catalog:
            catalog.store_priorities(served["first"], [])


@pytest.mark.parametrize(
    "rel",
    ["../secret.png", "imgs/../../secret.png", "/etc/passwd", "imgs/link.png", "..%2Fsecret.png"],
)
def test_paths_that_leave_the_served_root_are_refused(client, rel, caplog):
    res = client.post("/predict", json=predict_body(rel))

    assert res.status_code == 200  # a well-formed request; the task says why it got nothing
    (item,) = res.json()["results"]
    assert item["status"] == 403 and "result" not in item
    assert "leaves the served folder" in item["error"]
    assert any("outside the served root" in r.getMessage() for r in caplog.records)


def test_an_unknown_task_image_is_a_404_item(client):
    res = client.post("/predict", json=predict_body("imgs/nope.jpg"))
    assert res.status_code == 200
    (item,) = res.json()["results"]
    assert item["status"] == 404 and "no image at imgs/nope.jpg" in item["error"]


def test_a_bad_image_in_a_batch_gets_an_error_item_without_result(client):
    res = client.post("/predict", json=predict_body("imgs/img 0.jpg", "imgs/nope.jpg"))

    assert res.status_code == 200
    good, bad = res.json()["results"]
    assert "result" in good and "result" not in bad  # Label Studio skips items without result
    assert "no image at" in bad["error"]


@pytest.mark.parametrize(
    "tasks, words",
    [
        ([{}], "no image URL"),  # valid for the schema (every task field is optional)
        ([{"id": 1, "data": {"text": "x"}}], "no image URL"),
        ([{"id": 1, "data": {"image": "ftp://x/y.jpg"}}], "unsupported image URL"),
    ],
)
def test_tasks_without_a_usable_image_url_get_a_422_item(client, tasks, words):
    res = client.post("/predict", json={"tasks": tasks})
    assert res.status_code == 200
    (item,) = res.json()["results"]
    assert item["status"] == 422 and words in item["error"] and "result" not in item


@pytest.mark.parametrize("body", ['{"tasks": [', "[1, 2]", '{"tasks": []}', '{"tasks": "x"}', ""])
def test_malformed_json_is_a_4xx_json_error(client, body):
    res = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 422
    assert res.json()["error"] == "invalid request"
    assert "Traceback" not in res.text


@pytest.mark.parametrize("body", [b"\xff", b"[" * 5000 + b"]" * 5000])
@pytest.mark.parametrize("route", ["/setup", "/predict", "/webhook"])
def test_an_unparseable_body_is_a_400_the_schema_states(client, route, body):
    res = client.post(route, content=body, headers={"content-type": "application/json"})
    assert res.status_code == 400
    assert res.json() == {"error": BAD_BODY}
    responses = client.get("/openapi.json").json()["paths"][route]["post"]["responses"]
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


@pytest.mark.parametrize(
    "route, body, field",
    [
        ("/setup", {"project": False}, "project"),
        ("/setup", {"hostname": 3}, "hostname"),
        ("/predict", {"tasks": [{"id": True}]}, "id"),
        ("/predict", {"tasks": [{"id": "3"}]}, "id"),
        ("/predict", {"tasks": [{"id": 1.5}]}, "id"),
        ("/predict", {"tasks": [{"data": {}}], "label_config": 1}, "label_config"),
        ("/webhook", {"action": 7}, "action"),
    ],
)
def test_values_of_another_json_type_are_refused_with_422(client, route, body, field):
    res = client.post(route, json=body)
    assert res.status_code == 422, res.text
    assert res.json()["error"] == "invalid request"
    assert field in res.json()["detail"][0]["loc"]


def test_what_label_studio_sends_is_accepted_extra_fields_included(client, served):
    setup = {
        "project": "2.1795617926",
        "schema": detection_config(CLASSES),
        "hostname": "http://localhost:8080",
        "access_token": "x" * 40,
        "extra_params": None,
        "model_version": "whatever",  # fields a later Label Studio adds are ignored
    }
    assert client.post("/setup", json=setup).status_code == 200
    task = {
        "id": 4,
        "data": {"image": url("imgs/img 0.jpg"), "wb_image_id": served["ids"][0]},
        "annotations": [],
        "predictions": [],
        "meta": {},
        "created_at": "2026-11-25T10:00:00Z",
        "inner_id": 1,
        "total_annotations": 0,
        "project": 2,
    }
    res = client.post(
        "/predict",
        json={
            "tasks": [task],
            "project": "2.1795617926",
            "label_config": detection_config(CLASSES),
            "params": {"login": None, "password": None, "context": None},
        },
    )
    assert res.status_code == 200, res.text
    assert res.json()["results"][0]["result"]


def test_a_config_without_rectangles_gets_a_422_item_per_task(client):
    res = client.post(
        "/predict",
        json={
            **predict_body("imgs/img 0.jpg", "imgs/img 1.jpg"),
            "label_config": "<View><Text name='t' value='$t'/></View>",
        },
    )
    assert res.status_code == 200
    items = res.json()["results"]
    assert [i["status"] for i in items] == [422, 422]
    assert all("RectangleLabels" in i["error"] for i in items)
    res = client.post("/predict", json={**predict_body("imgs/img 0.jpg"), "label_config": "<View"})
    assert "not valid XML" in res.json()["results"][0]["error"]


def test_oversized_bodies_are_refused_with_413(served):
    small = make_client(served, max_body_bytes=2000)
    big = {"tasks": [{"id": 1, "data": {"image": "x" * 5000}}]}

    assert small.post("/predict", json=big).status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 500

    res = small.post("/webhook", content=chunks(), headers={"content-type": "application/json"})
    assert res.status_code == 413 and "limit" in res.json()["error"]


def test_basic_auth_and_bearer_token(served):
    basic = make_client(served, basic_auth=("ls", "s3cret"))
    good = "Basic " + base64.b64encode(b"ls:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"ls:wrong").decode()

    assert basic.get("/health").status_code == 200  # liveness stays open
    assert basic.post("/setup", json={}).status_code == 401
    assert basic.post("/setup", json={}, headers={"Authorization": bad}).status_code == 401
    assert basic.post("/setup", json={}, headers={"Authorization": good}).status_code == 200
    bearer = make_client(served, bearer_token="t0k")
    assert bearer.get("/versions").status_code == 401
    assert bearer.get("/versions", headers={"Authorization": "Bearer t0k"}).status_code == 200


def test_versions_lists_registered_versions(client, served):
    res = client.get("/versions")
    assert res.status_code == 200
    assert res.json() == {
        "versions": [served["first"], served["second"]],
        "model_version": served["first"],
    }


def test_without_a_promoted_model_predict_is_503_and_health_up(workspace_factory):
    from workbench.backend import BackendSettings, ModelHolder, create_app

    ws = workspace_factory(classes=CLASSES)
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    client = TestClient(create_app(holder, ws.open_catalog, BackendSettings()))

    assert client.get("/health").json() == {
        "status": "UP",
        "model_class": "workbench",
        "model_version": None,
    }
    res = client.post("/predict", json=predict_body("a.jpg"))
    assert res.status_code == 503 and "wb retrain" in res.json()["error"]


def test_the_schema_names_the_authentication_and_401_only_where_it_applies(served):
    open_schema = make_client(served).get("/openapi.json").json()
    assert "securitySchemes" not in open_schema.get("components", {})
    assert "401" not in open_schema["paths"]["/predict"]["post"]["responses"]

    schema = make_client(served, bearer_token="t0k").get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    for path, method in [("/setup", "post"), ("/predict", "post"), ("/webhook", "post")]:
        op = schema["paths"][path][method]
        assert op["security"] == [{"bearer": []}]
        assert {"400", "401", "413", "422"} <= set(op["responses"])
    assert schema["paths"]["/versions"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]  # liveness stays open


def test_predict_requests_beyond_the_queue_get_503_busy(served):
    client = make_client(served, predict_slots=1, predict_queue=0)
    gate = client.app.state.predict_gate
    with gate.admit():  # the one slot is taken and nobody may wait
        res = client.post("/predict", json=predict_body("imgs/img 0.jpg"))
    assert res.status_code == 503 and res.headers["retry-after"] == "5"
    assert res.json() == {"error": "busy: 1 predict requests running and 0 waiting; retry later"}
    assert client.post("/predict", json=predict_body("imgs/img 0.jpg")).status_code == 200
