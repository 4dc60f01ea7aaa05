"""`wb agreement`'s rules (workbench/labelstudio/agreement.py), case by case, and the
box matcher they stand on (geometry.match_boxes)."""

from __future__ import annotations

import pytest

from workbench.catalog.records import LsAnnotation
from workbench.geometry import match_boxes
from workbench.labelstudio.agreement import pair_agreement, task_agreement
from workbench.labelstudio.tasks import result_boxes

pytestmark = pytest.mark.unit

W, H = 200, 100


def rect(label: str, x1: float, y1: float, x2: float, y2: float) -> dict:
    """A Label Studio rectangle of a 200x100 image, from pixel corners."""
    return {
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": W,
        "original_height": H,
        "value": {
            "x": x1 / W * 100,
            "y": y1 / H * 100,
            "width": (x2 - x1) / W * 100,
            "height": (y2 - y1) / H * 100,
            "rectanglelabels": [label],
        },
    }


def ann(aid: int, who: str | None, result: list[dict], **kw) -> LsAnnotation:
    return LsAnnotation(
        annotation_id=aid,
        task_id=1,
        image_id=7,
        annotator=who,
        updated_at=kw.pop("updated_at", f"2026-12-01T00:00:0{aid}"),
        was_cancelled=kw.pop("was_cancelled", False),
        n_boxes=len(result),
        chosen=False,
        result=result,
        **kw,
    )


IVORY = rect("ivory", 10, 10, 60, 60)
SCALES = rect("scales", 100, 20, 180, 90)


def test_matcher_pairs_highest_iou_first_one_to_one():
    a = [(0, 0, 10, 10), (20, 0, 30, 10)]
    b = [(1, 0, 11, 10), (0, 0, 10, 10), (50, 50, 60, 60)]
    pairs = match_boxes(a, b, 0.5)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]  # b's exact copy wins, b[0] left over
    assert pairs[0][2] == pytest.approx(1.0)


def test_matcher_with_labels_pairs_only_the_same_label():
    boxes = [(0, 0, 10, 10)]
    assert match_boxes(boxes, boxes, 0.5, labels=(["a"], ["b"])) == []
    assert len(match_boxes(boxes, boxes, 0.5)) == 1


def test_perfect_agreement_scores_one():
    t = task_agreement(1, 7, [ann(1, "ann@x", [IVORY, SCALES]), ann(2, "bob@x", [SCALES, IVORY])])
    assert t.score == pytest.approx(1.0)
    assert t.annotators == ["ann@x", "bob@x"]
    assert not t.disagreement


def test_one_missing_box_scores_two_thirds_and_is_a_disagreement():
    t = task_agreement(1, 7, [ann(1, "ann@x", [IVORY, SCALES]), ann(2, "bob@x", [IVORY])])
    assert t.score == pytest.approx(2 * 1 / 3)
    assert t.pairs[0].matched == 1 and t.pairs[0].class_swaps == 0
    assert t.disagreement  # below the default 0.8
    assert not task_agreement(
        1, 7, [ann(1, "a", [IVORY, SCALES]), ann(2, "b", [IVORY])], threshold=0.6
    ).disagreement


def test_class_swap_scores_zero_and_is_counted_as_a_swap():
    swapped = rect("scales", 10, 10, 60, 60)  # IVORY's place, another label
    t = task_agreement(1, 7, [ann(1, "ann@x", [IVORY]), ann(2, "bob@x", [swapped])])
    assert t.score == 0.0
    assert t.pairs[0].class_swaps == 1


def test_a_single_annotator_has_no_agreement_not_zero_or_one():
    t = task_agreement(1, 7, [ann(1, "ann@x", [IVORY])])
    assert t.score is None
    assert not t.disagreement


def test_a_skip_and_a_superseded_annotation_do_not_count_as_annotators():
    anns = [
        ann(1, "ann@x", [SCALES]),  # ann's earlier answer, replaced by annotation 3
        ann(2, "bob@x", [], was_cancelled=True),
        ann(3, "ann@x", [IVORY]),
    ]
    t = task_agreement(1, 7, anns)
    assert t.annotators == ["ann@x"] and t.score is None


def test_two_negatives_agree_fully():
    assert pair_agreement([], []) == (1.0, 0, 0)
    assert pair_agreement(result_boxes([IVORY], W, H), [])[0] == 0.0


def test_three_annotators_average_their_pairs():
    t = task_agreement(
        1,
        7,
        [ann(1, "a", [IVORY]), ann(2, "b", [IVORY]), ann(3, "c", [IVORY, SCALES])],
    )
    # a-b 1.0, a-c 2/3, b-c 2/3
    assert t.score == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
