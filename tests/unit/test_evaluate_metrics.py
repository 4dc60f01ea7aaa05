"""Evaluation metrics: pycocotools figures, the image-accuracy rule, the confusion matrix."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest

from workbench.catalog.records import Box
from workbench.detection.metrics import EvaluationConfig, EvaluationResult, evaluate_detections

CLASSES = ["cat", "dog"]


def det(label, x1, y1, x2, y2, score=0.9):
    return {"label": label, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": score}


def cell(result, gt_label, pred_label):
    labels = result.confusion_labels
    return result.confusion_matrix[labels.index(gt_label)][labels.index(pred_label)]


def test_perfect_boxes_give_ap_one():
    gt = {
        "a": [Box("cat", 10, 10, 50, 50)],
        "b": [Box("dog", 0, 0, 30, 40), Box("cat", 40, 40, 80, 90)],
    }
    preds = {k: [det(b.label, *b.xyxy) for b in boxes] for k, boxes in gt.items()}

    r = evaluate_detections(gt, preds, CLASSES)

    assert r.mAP50 == 1.0 and r.mAP == 1.0 and r.mAR100 == 1.0
    assert r.per_class["cat"]["AP50"] == 1.0 and r.per_class["dog"]["AR100"] == 1.0
    assert cell(r, "cat", "cat") == 2 and cell(r, "dog", "dog") == 1
    assert cell(r, "background", "cat") == 0 and cell(r, "cat", "background") == 0


def test_boxes_shifted_below_iou_half_score_zero_at_ap50():
    # a 40x40 box shifted by 20 px overlaps its truth with IoU 800/2400 = 0.33
    gt = {"a": [Box("cat", 0, 0, 40, 40)]}
    preds = {"a": [det("cat", 20, 0, 60, 40)]}

    r = evaluate_detections(gt, preds, CLASSES)

    assert r.mAP50 == 0.0 and r.mAP == 0.0
    assert r.per_class["cat"]["AP50"] == 0.0
    assert r.per_class["dog"]["AP50"] is None  # no dog boxes: undefined, not -1
    assert cell(r, "cat", "background") == 1  # the miss
    assert cell(r, "background", "cat") == 1  # the false positive


def test_wrong_class_counts_in_confusion_matrix():
    gt = {"a": [Box("cat", 0, 0, 40, 40)], "b": [Box("dog", 0, 0, 40, 40)]}
    preds = {"a": [det("dog", 1, 1, 40, 40, 0.6)], "b": [det("dog", 0, 0, 40, 40, 0.9)]}

    r = evaluate_detections(gt, preds, CLASSES)

    assert cell(r, "cat", "dog") == 1
    assert cell(r, "dog", "dog") == 1
    assert cell(r, "cat", "cat") == 0 and cell(r, "cat", "background") == 0
    assert r.per_class["cat"]["AP50"] == 0.0 and r.per_class["dog"]["AP50"] == 1.0
    assert r.per_class["cat"]["accuracy"] == 0.0 and r.per_class["dog"]["accuracy"] == 1.0


def test_image_accuracy_uses_top_confident_detection_and_background_when_none():
    gt = {
        "cat_right": [Box("cat", 0, 0, 40, 40)],
        "cat_missed": [Box("cat", 0, 0, 40, 40)],  # only a low-score detection
        "empty_right": [],  # background, nothing detected
        "empty_wrong": [],  # background, a confident dog
        "dog_top_wrong": [Box("dog", 0, 0, 40, 40)],  # top detection is a cat
    }
    labels = {
        "cat_right": "cat",
        "cat_missed": "cat",
        "empty_right": "background",
        "empty_wrong": "background",
        "dog_top_wrong": "dog",
    }
    preds = {
        "cat_right": [det("cat", 0, 0, 40, 40, 0.9), det("dog", 50, 50, 60, 60, 0.6)],
        "cat_missed": [det("cat", 0, 0, 40, 40, 0.3)],
        "empty_wrong": [det("dog", 5, 5, 20, 20, 0.7)],
        "dog_top_wrong": [det("dog", 0, 0, 40, 40, 0.6), det("cat", 0, 0, 40, 40, 0.8)],
    }

    r = evaluate_detections(gt, preds, CLASSES, image_labels=labels, score_threshold=0.5)

    outcome = {o.image: o for o in r.image_outcomes}
    assert outcome["cat_missed"].predicted == "background" and not outcome["cat_missed"].correct
    assert outcome["empty_right"].predicted == "background" and outcome["empty_right"].correct
    assert outcome["dog_top_wrong"].predicted == "cat"
    assert r.per_class["cat"]["accuracy"] == 0.5
    assert r.per_class["dog"]["accuracy"] == 0.0
    assert r.per_class["background"]["accuracy"] == 0.5
    assert r.per_class["background"]["AP50"] is None
    assert r.accuracy == 0.4
    # the score threshold is for image decisions only: the 0.3 cat still counts in AP
    assert r.per_class["cat"]["AR100"] == 1.0


def test_image_without_label_takes_its_boxes_majority_class():
    gt = {"a": [Box("dog", 0, 0, 10, 10), Box("dog", 20, 20, 30, 30), Box("cat", 40, 40, 50, 50)]}
    r = evaluate_detections(
        gt, {"a": [det("dog", 0, 0, 10, 10)]}, CLASSES, image_labels={"a": None}
    )
    assert r.image_outcomes[0].label == "dog" and r.image_outcomes[0].correct


def test_empty_predictions_give_zero_not_a_crash():
    gt = {"a": [Box("cat", 0, 0, 40, 40)], "b": []}

    r = evaluate_detections(gt, {}, CLASSES)

    assert r.mAP50 == 0.0 and r.mAP == 0.0 and r.mAR100 == 0.0
    assert r.per_class["cat"]["AP50"] == 0.0 and r.per_class["dog"]["AP50"] is None
    assert cell(r, "cat", "background") == 1
    assert r.accuracy == 0.5  # the unlabelled empty image is background, and so predicted


def test_no_ground_truth_boxes_give_none():
    r = evaluate_detections({"a": []}, {"a": [det("cat", 0, 0, 4, 4)]}, CLASSES)
    assert r.mAP50 is None and r.mAP is None and r.mAR100 is None
    assert cell(r, "background", "cat") == 1

    nothing = evaluate_detections({}, {}, CLASSES)
    assert nothing.images == 0 and nothing.accuracy is None and nothing.mAP50 is None


def test_json_shape_and_round_trip():
    gt = {1: [Box("cat", 0, 0, 40, 40)], 2: [Box("dog", 5, 5, 25, 25)]}
    preds = {1: [det("cat", 0, 0, 40, 40)], 2: [det("cat", 5, 5, 25, 25)]}
    r = evaluate_detections(gt, preds, CLASSES, image_labels={1: "cat", 2: "dog"})
    r.model, r.split = "v1", "test"

    m = json.loads(json.dumps(r.metrics))

    assert {"model", "split", "images", "mAP50", "mAP", "mAR100", "per_class", "accuracy"} <= set(m)
    assert m["model"] == "v1" and m["split"] == "test" and m["images"] == 2
    assert set(m["per_class"]) == {"cat", "dog"}
    assert set(m["per_class"]["cat"]) >= {"AP50", "AR100", "accuracy"}
    assert m["confusion_matrix"]["labels"] == ["cat", "dog", "background"]
    assert -1 not in [v for c in m["per_class"].values() for v in c.values()]
    again = EvaluationResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.metrics == r.metrics and again.image_outcomes == r.image_outcomes


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown evaluation method 'voc'.*coco"):
        EvaluationConfig(classes=CLASSES, method="voc")
    with pytest.raises(ValueError, match="score_threshold"):
        EvaluationConfig(classes=CLASSES, score_threshold=1.5)


def _reference_cocoeval(tmp_path, gt, preds, classes):
    """pycocotools the documented way: JSON files on disk, loadRes from a path."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    keys = sorted(gt)
    images = [
        {"id": i + 1, "file_name": f"{k}.jpg", "width": 200, "height": 200}
        for i, k in enumerate(keys)
    ]
    anns, results = [], []
    for i, k in enumerate(keys):
        for b in gt[k]:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": classes.index(b.label) + 1,
                    "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                    "area": (b.x2 - b.x1) * (b.y2 - b.y1),
                    "iscrowd": 0,
                }
            )
        for d in preds.get(k, []):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": classes.index(d["label"]) + 1,
                    "bbox": [d["x1"], d["y1"], d["x2"] - d["x1"], d["y2"] - d["y1"]],
                    "score": d["score"],
                }
            )
    (tmp_path / "gt.json").write_text(
        json.dumps(
            {
                "images": images,
                "annotations": anns,
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)],
            }
        )
    )
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(cg, cg.loadRes(str(tmp_path / "dt.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_figures_equal_pycocotools_on_a_mixed_set(tmp_path):
    rng = random.Random(7)
    classes = ["cat", "dog", "fox"]
    gt, preds = {}, {}
    for k in range(12):
        boxes, dets = [], []
        for _ in range(rng.randint(0, 3)):
            x, y, w, h = (
                rng.uniform(0, 120),
                rng.uniform(0, 120),
                rng.uniform(10, 70),
                rng.uniform(10, 70),
            )
            label = rng.choice(classes[:2])  # no fox in the truth: its AP is undefined
            boxes.append(Box(label, x, y, x + w, y + h))
            if rng.random() < 0.8:  # found, jittered, sometimes with the wrong class
                j = rng.uniform(-8, 8)
                dets.append(
                    det(
                        label if rng.random() < 0.8 else rng.choice(classes),
                        x + j,
                        y + j,
                        x + w + j,
                        y + h,
                        rng.uniform(0.2, 1.0),
                    )
                )
        for _ in range(rng.randint(0, 2)):  # false positives
            x, y = rng.uniform(0, 150), rng.uniform(0, 150)
            dets.append(det(rng.choice(classes), x, y, x + 20, y + 25, rng.uniform(0.05, 0.9)))
        gt[f"img{k}"], preds[f"img{k}"] = boxes, dets

    r = evaluate_detections(gt, preds, classes)
    ev = _reference_cocoeval(tmp_path, gt, preds, classes)

    assert r.mAP == pytest.approx(ev.stats[0], abs=1e-6)
    assert r.mAP50 == pytest.approx(ev.stats[1], abs=1e-6)
    assert r.mAR100 == pytest.approx(ev.stats[8], abs=1e-6)
    assert 0 < r.mAP50 < 1  # a set where the figures mean something
    for k, c in enumerate(classes[:2]):
        assert r.per_class[c]["AP50"] == pytest.approx(
            ev.eval["precision"][0, :, k, 0, 2].mean(), abs=1e-6
        )
        assert r.per_class[c]["AR100"] == pytest.approx(
            ev.eval["recall"][:, k, 0, 2].mean(), abs=1e-6
        )
    assert r.per_class["fox"]["AP50"] is None and r.per_class["fox"]["AR100"] is None


def test_images_with_unknown_boxes_count_for_accuracy_only():
    # folder-per-class sets know each image's label but not its boxes
    gt = {"a": None, "b": None, "c": [Box("cat", 0, 0, 40, 40)]}
    preds = {"a": [det("cat", 0, 0, 9, 9)], "b": [], "c": [det("cat", 0, 0, 40, 40)]}

    r = evaluate_detections(gt, preds, CLASSES, image_labels={"a": "cat", "b": "dog", "c": "cat"})

    assert r.mAP50 == 1.0  # only image c has boxes to match
    assert sum(map(sum, r.confusion_matrix)) == 1
    assert r.per_class["cat"]["accuracy"] == 1.0 and r.per_class["dog"]["accuracy"] == 0.0
    assert r.images == 3 and r.metrics["images_with_boxes"] == 1
