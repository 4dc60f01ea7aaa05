"""Label-error scores on hand-made boxes: each planted error ranks above the clean boxes."""

from __future__ import annotations

import pytest

from workbench.catalog.records import Box
from workbench.errors import InvalidChoice
from workbench.review.label_errors import Thresholds, label_errors

pytestmark = pytest.mark.unit


def pred(label, x1, y1, x2, y2, score=0.9, probs=None):
    return {
        "label": label,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "score": score,
        "probs": probs or {label: score},
    }


def clean(i):
    return [Box("cat", 0, 0, 10, 10)], [pred("cat", 0, 0, 10, 10, 0.95)]


def scene():
    truth, preds = {}, {}
    for i in range(1, 6):
        truth[i], preds[i] = clean(i)
    truth[10] = [Box("cat", 0, 0, 10, 10)]  # missing: a second cat not drawn
    preds[10] = [pred("cat", 0, 0, 10, 10), pred("cat", 50, 50, 60, 60, 0.9)]
    truth[11] = [Box("cat", 0, 0, 10, 10), Box("cat", 80, 80, 90, 90)]  # extra box
    preds[11] = [pred("cat", 0, 0, 10, 10)]
    truth[12] = [Box("dog", 0, 0, 10, 10)]  # wrong class
    preds[12] = [pred("cat", 0, 0, 10, 10, 0.9, {"cat": 0.9, "dog": 0.05})]
    truth[13] = [Box("cat", 5, 0, 15, 10)]  # shifted by half a box
    preds[13] = [pred("cat", 0, 0, 10, 10)]
    return truth, preds


@pytest.mark.parametrize(
    "kind,image", [("missing", 10), ("extra", 11), ("wrong_class", 12), ("localisation", 13)]
)
def test_planted_error_is_found_and_ranks_first(kind, image):
    truth, preds = scene()
    report = label_errors("v1", truth, preds, kind=kind)
    assert report.suspects, kind
    assert report.suspects[0].image_id == image
    assert {s.image_id for s in report.suspects} == {image}


def test_clean_images_score_nothing_and_planted_images_rank_first():
    truth, preds = scene()
    report = label_errors("v1", truth, preds)
    assert set(report.image_scores) == {10, 11, 12, 13}
    assert all(0 < s <= 1 for s in report.image_scores.values())
    assert report.images == 9


def test_images_without_predictions_are_not_scored():
    truth, preds = scene()
    del preds[11]
    report = label_errors("v1", truth, preds)
    assert 11 not in report.image_scores and report.images == 8


def test_bad_thresholds_and_kind_say_what_is_allowed():
    with pytest.raises(InvalidChoice, match="band_low"):
        Thresholds(band_low=0.6, match_iou=0.5)
    with pytest.raises(InvalidChoice, match="missing, extra"):
        label_errors("v1", {}, {}, kind="nope")
