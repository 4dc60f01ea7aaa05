"""Label configs, tasks and results: pure conversions, no server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from workbench.catalog.records import Box, ImageRecord
from workbench.errors import WorkbenchError
from workbench.labelstudio.config import config_labels, detection_config
from workbench.labelstudio.tasks import (
    SUSPECT_ID_PREFIX,
    ImageOutsideRoot,
    ModelPrediction,
    SuspectMarker,
    boxes_agree,
    build_task,
    image_url,
    is_suspect_marker,
    mark_suspects,
    model_regions,
    percent_rect,
    prediction_for,
    result_boxes,
    same_boxes,
    task_score,
)
from workbench.taxonomy import Taxonomy

TAX = Taxonomy.default()


def test_detection_config_lists_the_classes_at_the_level_in_order():
    for level in ("species", "category"):
        config = detection_config(TAX.classes(level))
        ET.fromstring(config)  # well-formed XML
        assert config_labels(config) == TAX.classes(level)
        assert "$label_hint" in config and "$model_hint" in config and "$image" in config


def test_detection_config_escapes_class_names():
    config = detection_config(['a "quoted" <class>', "b&c"])
    assert config_labels(config) == ['a "quoted" <class>', "b&c"]


def test_detection_config_without_classes_is_refused():
    with pytest.raises(WorkbenchError, match="no classes"):
        detection_config([])


def test_image_url_is_relative_to_the_document_root_and_quoted(tmp_path):
    p = tmp_path / "photos" / "tiger claw" / "a#1.jpg"
    assert image_url(p, tmp_path) == "/data/local-files/?d=photos/tiger%20claw/a%231.jpg"


def test_image_outside_the_document_root_says_how_to_fix_it(tmp_path):
    with pytest.raises(ImageOutsideRoot, match="wb ls stop && wb ls start"):
        image_url("/somewhere/else.jpg", tmp_path / "root")


def test_pixels_to_percent_and_back_round_trip_exactly():
    box = {"x1": 12.25, "y1": 7.5, "x2": 301.0, "y2": 199.75}
    value = percent_rect(box, 320, 200)
    value["rectanglelabels"] = ["tiger"]
    (back,) = result_boxes([{"type": "rectanglelabels", "value": value}], 320, 200)
    assert back.xyxy == pytest.approx((12.25, 7.5, 301.0, 199.75), abs=1e-9)
    assert (back.label, back.source) == ("tiger", "labelstudio")


def test_boxes_are_clipped_to_the_image():
    assert percent_rect({"x1": -5, "y1": -5, "x2": 500, "y2": 50}, 100, 100) == {
        "x": 0.0,
        "y": 0.0,
        "width": 100.0,
        "height": 50.0,
        "rotation": 0,
    }


def test_a_rotated_rectangle_becomes_its_bounding_box():
    value = {"x": 50, "y": 10, "width": 20, "height": 10, "rotation": 90, "rectanglelabels": ["a"]}
    (box,) = result_boxes([{"type": "rectanglelabels", "value": value}], 100, 100)
    # 20x10 px rotated 90 degrees clockwise around its top-left corner (50, 10)
    assert box.xyxy == pytest.approx((40.0, 10.0, 50.0, 30.0))


def test_result_boxes_ignore_other_controls_and_empty_labels():
    items = [
        {"type": "choices", "value": {"choices": ["x"]}},
        {
            "type": "rectanglelabels",
            "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": []},
        },
    ]
    assert result_boxes(items, 100, 100) == []


def test_task_score_prefers_one_minus_uncertainty_then_mean_box_score():
    boxes = [{"score": 0.9}, {"score": 0.5}]
    assert task_score(boxes, 0.8) == pytest.approx(0.2)
    assert task_score(boxes, None) == pytest.approx(0.7)
    assert task_score([], None) is None


def test_build_task_carries_hint_model_version_image_id_and_boxes(tmp_path):
    image = ImageRecord(
        id=7, path=str(tmp_path / "ivory" / "a.jpg"), width=200, height=100, label="elephant_ivory"
    )
    pred = ModelPrediction(
        "v3",
        [
            {"label": "elephant", "x1": 20, "y1": 10, "x2": 120, "y2": 60, "score": 0.8},
            {"label": "elephant_skin", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "score": 0.4},
            {"label": "not-a-class", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "score": 0.4},
        ],
        uncertainty=None,
    )
    task = build_task(image, tmp_path, TAX.classes("species"), "species", TAX, pred)
    data = task["data"]
    assert data["wb_image_id"] == 7 and data["model_version"] == "v3"
    assert data["label"] == "elephant" and "elephant" in data["label_hint"]
    assert "v3" in data["model_hint"]
    (p,) = task["predictions"]
    assert p["model_version"] == "v3"
    assert [r["value"]["rectanglelabels"] for r in p["result"]] == [["elephant"], ["elephant"]]
    assert p["result"][0]["value"] | {} == {
        "x": 10.0,
        "y": 10.0,
        "width": 50.0,
        "height": 50.0,
        "rotation": 0,
        "rectanglelabels": ["elephant"],
    }
    assert p["score"] == pytest.approx(0.5333333, abs=1e-6)


def test_build_task_without_a_model_has_no_prediction(tmp_path):
    image = ImageRecord(
        id=1, path=str(tmp_path / "x" / "a.jpg"), width=10, height=10, label="background"
    )
    task = build_task(image, tmp_path, TAX.classes("species"), "species", TAX)
    assert "predictions" not in task and task["data"]["model_version"] == ""
    assert task["data"]["label"] == "background"


def test_build_task_carries_imported_boxes_as_an_annotation_at_the_project_level(tmp_path):
    image = ImageRecord(
        id=4,
        path=str(tmp_path / "voc" / "a.jpg"),
        width=200,
        height=100,
        label="tiger_claw",
        source_format="voc",
        annotated=True,
    )
    truth = [Box("tiger_claw", 20, 10, 120, 60), Box("not-a-class", 0, 0, 5, 5)]
    pred = ModelPrediction(
        "v2", [{"label": "tiger", "x1": 0, "y1": 0, "x2": 50, "y2": 50, "score": 0.9}]
    )
    task = build_task(image, tmp_path, TAX.classes("species"), "species", TAX, pred, truth)
    (a,) = task["annotations"]
    # the finer label maps to the project's level; a box with no class there is left out
    assert [r["value"]["rectanglelabels"] for r in a["result"]] == [["tiger"]]
    assert {k: a["result"][0]["value"][k] for k in ("x", "y", "width", "height")} == {
        "x": 10.0,
        "y": 10.0,
        "width": 50.0,
        "height": 50.0,
    }
    assert (a["result"][0]["original_width"], a["result"][0]["original_height"]) == (200, 100)
    # the boxes come back from Label Studio's percent as the same pixels
    back = result_boxes(a["result"], 200, 100)
    assert same_boxes(back, [Box("tiger", 20, 10, 120, 60)])
    hint = task["data"]["model_hint"]
    assert "VOC import" in hint and "v2" in hint
    assert len(task["predictions"]) == 1  # the model's boxes stay a prediction


def test_build_task_marks_an_imported_negative_and_leaves_unannotated_images_open(tmp_path):
    image = ImageRecord(
        id=5,
        path=str(tmp_path / "c" / "n.jpg"),
        width=50,
        height=50,
        label="background",
        source_format="coco",
        annotated=True,
    )
    task = build_task(image, tmp_path, TAX.classes("species"), "species", TAX, None, [])
    assert task["annotations"] == [{"result": []}]
    assert "no objects" in task["data"]["model_hint"]
    plain = build_task(image, tmp_path, TAX.classes("species"), "species", TAX)
    assert "annotations" not in plain


def test_same_boxes_allows_the_percent_round_trip_but_not_a_moved_box():
    a = [Box("x", 0, 0, 10, 10), Box("y", 20, 20, 30, 30)]
    assert same_boxes(a, [Box("y", 20.0000001, 20, 30, 30), Box("x", 0, 0, 10.3, 10)])
    assert not same_boxes(a, [Box("y", 22, 20, 30, 30), Box("x", 0, 0, 10, 10)])
    assert not same_boxes(a, [Box("x", 0, 0, 10, 10), Box("x", 20, 20, 30, 30)])
    assert not same_boxes(a, a[:1]) and not same_boxes(a, None)
    assert same_boxes([], [])


def test_boxes_agree_pairs_boxes_by_label_and_overlap():
    a = [Box("x", 0, 0, 10, 10), Box("y", 20, 20, 30, 30)]
    assert boxes_agree(a, [Box("y", 21, 21, 30, 30), Box("x", 0, 0, 10, 11)])
    assert not boxes_agree(a, [Box("x", 0, 0, 10, 10)])
    assert not boxes_agree(a, [Box("x", 0, 0, 10, 10), Box("x", 20, 20, 30, 30)])
    assert boxes_agree([], [])


def _marked_case(tmp_path):
    image = ImageRecord(id=7, path=str(tmp_path / "a.jpg"), width=200, height=100)
    pred = ModelPrediction(
        "v3",
        [
            {"label": "elephant", "x1": 20, "y1": 10, "x2": 120, "y2": 60, "score": 0.8},
            {"label": "tiger", "x1": 150, "y1": 50, "x2": 190, "y2": 90, "score": 0.9},
        ],
    )
    result = prediction_for(image, pred, TAX.classes("species"), "species", TAX)["result"]
    markers = [
        # the model's tiger over no box: its own region gets the text
        SuspectMarker("missing", 0.9, "tiger", (150, 50, 190, 90), "Suspect missing 0.90: a"),
        # a ground-truth box no prediction supports: drawn, with the project's label
        SuspectMarker("extra", 0.8, "elephant_ivory", (0, 0, 50, 20), "Suspect extra 0.80: b"),
        # a label with no place in the project: left out, never a new class
        SuspectMarker("extra", 0.7, "no-such-class", (0, 0, 10, 10), "Suspect extra 0.70: c"),
    ]
    return image, result, markers


def test_mark_suspects_notes_the_model_box_and_draws_the_other_suspects(tmp_path):
    image, result, markers = _marked_case(tmp_path)
    out = mark_suspects(image, result, markers, TAX.classes("species"), "species", TAX)
    assert len(out) == 3
    elephant, tiger, extra = out
    assert "meta" not in elephant and elephant["id"] == result[0]["id"]
    assert tiger["id"] == result[1]["id"] and tiger["meta"] == {"text": "Suspect missing 0.90: a"}
    assert is_suspect_marker(extra) and extra["id"].startswith(SUSPECT_ID_PREFIX)
    assert extra["meta"] == {"text": "Suspect extra 0.80: b"}
    assert extra["value"]["rectanglelabels"] == ["elephant"]  # the project's label
    assert extra["value"]["x"] == 0 and extra["value"]["width"] == 25.0
    assert extra["value"]["height"] == 20.0
    assert "score" not in extra  # not a model confidence
    assert model_regions(out) == [elephant, tiger]
    assert result[1].get("meta") is None  # the input is not changed


def test_mark_suspects_again_replaces_the_markers_of_the_last_send(tmp_path):
    image, result, markers = _marked_case(tmp_path)
    classes = TAX.classes("species")
    once = mark_suspects(image, result, markers, classes, "species", TAX)
    assert mark_suspects(image, once, markers, classes, "species", TAX) == once
    # nothing suspect any more: the model's regions as they were
    assert mark_suspects(image, once, [], classes, "species", TAX) == result


def test_a_missing_suspect_the_prediction_lacks_is_drawn(tmp_path):
    image, result, _ = _marked_case(tmp_path)
    m = SuspectMarker("missing", 0.95, "tiger", (10, 60, 40, 90), "Suspect missing 0.95: d")
    out = mark_suspects(image, result, [m], TAX.classes("species"), "species", TAX)
    assert [is_suspect_marker(r) for r in out] == [False, False, True]
    assert out[2]["value"]["rectanglelabels"] == ["tiger"]
