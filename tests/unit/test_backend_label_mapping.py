"""`wb serve` in a project someone else set up (issue 22), through FastAPI's TestClient
with a tiny untrained model (classes cat, dog): /setup says what the project's labels
will get, /predict sends boxes under those labels, per control and its own image, with
the control's model_score_threshold."""

from __future__ import annotations

import logging

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from workbench.labelstudio.config import detection_config

pytestmark = pytest.mark.unit

CLASSES = ["cat", "dog"]
NOT_THE_MODELS = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Airplane"/><Label value="Car"/>
  </RectangleLabels></View>"""
RENAMED = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Feline" predicted_values="cat"/><Label value="Airplane"/>
  </RectangleLabels></View>"""
TWO_IMAGES = """<View>
  <Image name="front" value="$front"/><Image name="back" value="$back"/>
  <RectangleLabels name="front_boxes" toName="front"><Label value="cat"/></RectangleLabels>
  <RectangleLabels name="back_boxes" toName="back">
    <Label value="Hound" predicted_values="dog"/>
  </RectangleLabels></View>"""


def threshold_config(value: str) -> str:
    return (
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" '
        f'toName="image" model_score_threshold="{value}"><Label value="cat"/>'
        '<Label value="dog"/></RectangleLabels></View>'
    )


@pytest.fixture(scope="module")
def served(module_tmp):
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(1)
    root = module_tmp.mktemp("mapping")
    ws = Workspace.create(root / "ws", Taxonomy.flat(CLASSES))
    files = root / "files"
    files.mkdir()
    paths = []
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        img = Image.new("RGB", (96, 64), (120, 120, 120))
        img.paste(colour, (10 + 10 * i, 8, 50 + 10 * i, 40))
        img.save(files / f"p{i}.png")
        paths.append(files / f"p{i}.png")
    with ws.open_catalog() as catalog:
        version = register_untrained_model(ws, catalog, CLASSES, seed=0, promote=True)
    return {"ws": ws, "files": files, "paths": paths, "version": version}


def client_for(served, **settings_kw) -> TestClient:
    from workbench.backend import BackendSettings, ModelHolder, create_app

    ws = served["ws"]
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    settings = BackendSettings(taxonomy=ws.taxonomy, document_root=served["files"], **settings_kw)
    return TestClient(create_app(holder, ws.open_catalog, settings))


@pytest.fixture(scope="module")
def client(served):
    return client_for(served)


@pytest.fixture(scope="module")
def model_boxes(served):
    """What the model itself finds in each image."""
    from workbench.detection.predict import Predictor
    from workbench.images import open_image

    predictor = Predictor(served["ws"].models_dir / served["version"])
    return predictor.predict([open_image(p) for p in served["paths"]])


def local(name: str) -> str:
    return f"/data/local-files/?d={name}"


def predict(client, config, *tasks):
    res = client.post("/predict", json={"tasks": list(tasks), "label_config": config})
    assert res.status_code == 200, res.text
    return res.json()["results"]


def labels_of(result) -> list[str]:
    return [r["value"]["rectanglelabels"][0] for r in result]


def test_setup_says_which_labels_the_models_classes_feed(client, served):
    res = client.post("/setup", json={"project": "3.1", "schema": RENAMED})
    assert res.status_code == 200
    assert res.json() == {
        "model_version": served["version"],
        "labels": [
            {
                "name": "label",
                "to_name": "image",
                "data_key": "image",  # no score_threshold: --min-score applies
                "fed": {"Feline": ["cat"], "Airplane": []},
                "unreached": ["dog"],
                "notes": [],
            }
        ],
        "unmatched_classes": ["dog"],
    }


def test_setup_warns_and_logs_when_no_label_matches_any_class(served, caplog):
    client = client_for(served)  # its own log-once memory
    with caplog.at_level(logging.WARNING, logger="workbench.backend.app"):
        body = client.post("/setup", json={"project": "3.1", "schema": NOT_THE_MODELS}).json()
        client.post("/setup", json={"project": "3.1", "schema": NOT_THE_MODELS})
    assert body["warning"].startswith(
        "no label of the project (Airplane, Car) matches any class of the model (cat, dog): "
        "Label Studio gets no boxes."
    )
    assert body["unmatched_classes"] == ["cat", "dog"]
    warned = [r.getMessage() for r in caplog.records if "no label of the project" in r.message]
    assert warned == [f"label mapping: warning: {body['warning']}"]  # once, not every batch


def test_predict_sends_the_models_boxes_under_the_projects_label_names(client, model_boxes):
    (item,) = predict(client, RENAMED, {"id": 1, "data": {"image": local("p0.png")}})
    cats = [d for d in model_boxes[0] if d.label == "cat" and d.score >= 0.3]
    assert len(item["result"]) == len(cats) > 0
    assert set(labels_of(item["result"])) == {"Feline"}
    assert [r["score"] for r in item["result"]] == pytest.approx([d.score for d in cats])
    (none,) = predict(client, NOT_THE_MODELS, {"id": 1, "data": {"image": local("p0.png")}})
    assert none["result"] == []


def test_model_score_threshold_overrides_the_backends_minimum_for_that_control(served, model_boxes):
    strict = client_for(served, min_score=0.9)  # the untrained model scores about 0.34
    task = {"id": 1, "data": {"image": local("p0.png")}}
    (default,) = predict(strict, detection_config(CLASSES), task)
    (low,) = predict(strict, threshold_config("0.05"), task)
    (high,) = predict(client_for(served), threshold_config("0.9"), task)
    assert default["result"] == [] and high["result"] == []
    assert len(low["result"]) == len(model_boxes[0]) > 0


def test_each_control_gets_the_boxes_of_its_own_image(client, model_boxes):
    (item,) = predict(
        client,
        TWO_IMAGES,
        {"id": 7, "data": {"front": local("p0.png"), "back": local("p1.png")}},
    )
    front = [r for r in item["result"] if r["from_name"] == "front_boxes"]
    back = [r for r in item["result"] if r["from_name"] == "back_boxes"]
    assert {r["to_name"] for r in front} == {"front"} and {r["to_name"] for r in back} == {"back"}
    assert set(labels_of(front)) == {"cat"} and set(labels_of(back)) == {"Hound"}
    want_front = [d.score for d in model_boxes[0] if d.label == "cat" and d.score >= 0.3]
    want_back = [d.score for d in model_boxes[1] if d.label == "dog" and d.score >= 0.3]
    assert [r["score"] for r in front] == pytest.approx(want_front)
    assert [r["score"] for r in back] == pytest.approx(want_back)
    assert len({r["id"] for r in item["result"]}) == len(item["result"])  # region ids unique


def test_a_task_missing_one_of_its_images_gets_an_error_item_not_a_failed_batch(client):
    whole = {"id": 1, "data": {"front": local("p0.png"), "back": local("p1.png")}}
    half = {"id": 2, "data": {"front": local("p0.png")}}
    first, second = predict(client, TWO_IMAGES, whole, half)
    assert first["result"] and "error" not in first
    assert second == {
        "task": 2,
        "model_version": second["model_version"],
        "error": "image 'back': the task has no image URL",
        "status": 422,
    }
    # no task could be read at all: still 200 (any schema-valid body is), one error item each
    res = client.post("/predict", json={"tasks": [half], "label_config": TWO_IMAGES})
    assert res.status_code == 200
    [only] = res.json()["results"]
    assert only["error"] == "image 'back': the task has no image URL" and "result" not in only


def test_serve_connect_prints_the_mapping_and_the_warning_for_the_connected_project(served):
    from types import SimpleNamespace

    from workbench.backend import BackendSettings
    from workbench.backend.connect import label_report

    class Theirs:
        def get_project(self, project_id):
            return SimpleNamespace(id=project_id, label_config=NOT_THE_MODELS)

    project = SimpleNamespace(id=5, client=Theirs())
    lines = label_report(project, CLASSES, BackendSettings(taxonomy=served["ws"].taxonomy))
    assert lines[0] == (
        "labels of 'label' (image 'image', task field 'image'): Airplane <- nothing; Car <- "
        "nothing; min score 0.3"
    )
    assert lines[-1].startswith("warning: no label of the project (Airplane, Car) matches")
