"""`wb pull`'s rules without a server: which annotation wins, what is a disagreement,
when imported truth is kept, when an image is cleared, and what the applier counts."""

from __future__ import annotations

import pytest

from workbench.catalog.labelstudio import LsAnnotation
from workbench.catalog.records import Box
from workbench.labelstudio.pull import (
    KEEP_TRUTH,
    RECORD,
    UNCHANGED,
    WRITE,
    PullResult,
    apply_outcome,
    decide_task,
    latest_annotation,
)

pytestmark = pytest.mark.unit

SIZE = (200, 100)  # percent x 2 = pixels across, percent = pixels down


def rect(label, x, y, w, h, rotation=0):
    """A Label Studio rectangle in percent."""
    return {
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": rotation,
            "rectanglelabels": [label],
        },
    }


def ann(aid, *result, at="2026-01-01T00:00:00", cancelled=False, chosen=False, who="a@x.org"):
    return LsAnnotation(
        annotation_id=aid,
        task_id=1,
        image_id=5,
        annotator=who,
        updated_at=at,
        was_cancelled=cancelled,
        n_boxes=len(result),
        chosen=chosen,
        result=list(result),
    )


TIGER = rect("tiger", 10, 10, 20, 20)  # pixels (20, 10) - (60, 30)
TIGER_BOX = Box(label="tiger", x1=20, y1=10, x2=60, y2=30)


def decide(anns, previous=(), truth=None):
    return decide_task(list(anns), list(previous), truth, SIZE)


# ---- which annotation wins ------------------------------------------------------------
def test_the_latest_submitted_annotation_wins():
    out = decide(
        [ann(1, TIGER, at="2026-01-02"), ann(2, rect("lion", 0, 0, 5, 5), at="2026-01-01")]
    )
    assert out.action == WRITE and out.chosen.annotation_id == 1 and out.source == 1
    assert [(b.label, b.xyxy) for b in out.boxes] == [("tiger", TIGER_BOX.xyxy)]
    assert (out.boxes[0].annotator, out.boxes[0].annotation_id) == ("a@x.org", 1)


def test_equal_times_go_to_the_higher_annotation_id():
    assert latest_annotation([ann(3, at="t"), ann(7, at="t"), ann(5, at="t")]).annotation_id == 7
    assert latest_annotation([ann(3, at=None), ann(2, at="t")]).annotation_id == 2
    assert latest_annotation([]) is None


def test_a_later_skip_does_not_beat_a_submitted_annotation():
    out = decide([ann(1, TIGER, at="2026-01-01"), ann(2, at="2026-01-05", cancelled=True)])
    assert out.chosen.annotation_id == 1 and out.action == WRITE and not out.skipped


def test_a_submitted_annotation_without_boxes_is_a_negative():
    out = decide([ann(1)])
    assert out.action == WRITE and out.boxes == [] and out.source == 1


def test_a_rotated_box_becomes_its_bounding_box():
    out = decide([ann(1, rect("tiger", 10, 10, 20, 20, rotation=90))])
    (box,) = out.boxes
    # rotated 90 degrees around the top-left corner (20, 10): 40 px wide -> 40 px down
    assert box.xyxy == pytest.approx((0.0, 10.0, 20.0, 50.0))


# ---- disagreements ----------------------------------------------------------------------
def test_other_submitted_annotations_with_other_boxes_disagree():
    out = decide(
        [
            ann(1, TIGER, at="2"),
            ann(2, at="1"),
            ann(3, TIGER, at="0"),
            ann(4, at="3", cancelled=True),
        ]
    )
    assert out.chosen.annotation_id == 1
    assert [a.annotation_id for a in out.disagreeing] == [2]  # not 3 (agrees), not 4 (skip)


def test_a_slightly_moved_box_still_agrees():
    out = decide([ann(1, TIGER, at="2"), ann(2, rect("tiger", 11, 11, 20, 20), at="1")])
    assert out.disagreeing == []


# ---- skips and unchanged tasks ----------------------------------------------------------
def test_only_skips_are_recorded_and_change_nothing():
    out = decide([ann(1, cancelled=True)])
    assert (out.action, out.chosen, out.boxes, out.skipped) == (RECORD, None, None, True)


def test_annotations_as_the_last_pull_recorded_them_are_unchanged():
    out = decide([ann(1, TIGER, at="2")], previous=[ann(1, TIGER, at="2", chosen=True)])
    assert out.action == UNCHANGED and out.chosen.annotation_id == 1


def test_an_edited_annotation_is_written_again():
    out = decide([ann(1, TIGER, at="3")], previous=[ann(1, at="2", chosen=True)])
    assert out.action == WRITE and len(out.boxes) == 1


# ---- imported truth ---------------------------------------------------------------------
def test_imported_truth_left_as_it_was_is_kept_and_not_claimed():
    out = decide([ann(1, TIGER)], truth=[TIGER_BOX])
    assert out.action == KEEP_TRUTH and out.source is None


def test_truth_this_project_wrote_stays_marked_when_the_annotation_says_the_same():
    out = decide(
        [ann(1, TIGER, at="3")],
        previous=[ann(1, TIGER, at="2", chosen=True)],
        truth=lambda: [TIGER_BOX],
    )
    assert out.action == KEEP_TRUTH and out.source == 1


def test_a_moved_box_replaces_the_imported_truth():
    moved = Box(label="tiger", x1=20, y1=10, x2=62, y2=30)
    assert decide([ann(1, TIGER)], truth=[moved]).action == WRITE


def test_truth_without_a_class_at_the_project_level_is_replaced():
    assert decide([ann(1, TIGER)], truth=lambda: None).action == WRITE


def test_truth_is_looked_up_only_when_the_decision_needs_it():
    def boom():
        raise AssertionError("truth looked up")

    assert decide([ann(1, TIGER)], previous=[ann(1, TIGER)], truth=boom).action == UNCHANGED
    assert decide([ann(1, cancelled=True)], truth=boom).action == RECORD


# ---- cleared ----------------------------------------------------------------------------
def test_deleted_annotations_clear_the_truth_they_gave():
    out = decide([], previous=[ann(1, TIGER, chosen=True)])
    assert (out.action, out.boxes, out.source, out.skipped) == (WRITE, None, None, False)


def test_only_skips_left_clear_the_truth_too():
    out = decide([ann(2, cancelled=True)], previous=[ann(1, TIGER, chosen=True)])
    assert (out.action, out.boxes, out.skipped) == (WRITE, None, True)


def test_deleted_annotations_that_gave_no_truth_are_only_recorded():
    assert decide([], previous=[ann(1, cancelled=True)]).action == RECORD
    assert decide([], previous=[ann(1, TIGER)]).action == RECORD  # kept imported truth


# ---- the applier ------------------------------------------------------------------------
class RecordingCatalog:
    def __init__(self):
        self.calls = []

    def apply_ls_task(self, project_id, task_id, image_id, anns, boxes, update_truth=True):
        self.calls.append(
            (task_id, image_id, [(a.annotation_id, a.chosen) for a in anns], boxes, update_truth)
        )


def apply(anns, previous=(), truth=None, image_id=5):
    catalog, result = RecordingCatalog(), PullResult(project_id=9)
    apply_outcome(catalog, 9, 1, image_id, anns, decide(anns, previous, truth), result)
    return catalog.calls, result


@pytest.mark.parametrize(
    "anns, previous, truth, counts, write",
    [
        # a new negative: written, counted as an updated image and a negative
        (
            [ann(1)],
            [],
            None,
            {"annotated_tasks": 1, "updated_images": 1, "negatives": 1},
            (0, True),
        ),
        (
            [ann(1, TIGER)],
            [],
            None,
            {"annotated_tasks": 1, "updated_images": 1, "boxes": 1},
            (1, True),
        ),
        # as before: nothing written; an untouched task with no annotations is not counted
        (
            [ann(1, at="x")],
            [ann(1, at="x", chosen=True)],
            None,
            {"annotated_tasks": 1, "unchanged": 1},
            None,
        ),
        ([], [], None, {}, None),
        ([ann(1, TIGER)], [], [TIGER_BOX], {"annotated_tasks": 1, "unchanged": 1}, (None, False)),
        ([ann(1, cancelled=True)], [], None, {"skipped": 1}, (None, False)),
        ([], [ann(1, TIGER, chosen=True)], None, {"cleared": 1}, (None, True)),
    ],
)
def test_the_applier_writes_once_and_counts(anns, previous, truth, counts, write):
    calls, result = apply(anns, previous, truth)
    keys = (
        "annotated_tasks",
        "updated_images",
        "negatives",
        "cleared",
        "skipped",
        "unchanged",
        "boxes",
    )
    assert {k: getattr(result, k) for k in keys} == {k: counts.get(k, 0) for k in keys}
    if write is None:
        assert calls == []
    else:
        ((_, _, _, boxes, update_truth),) = calls
        n_boxes, truth_written = write
        assert update_truth is truth_written
        assert (None if boxes is None else len(boxes)) == n_boxes


def test_the_applier_marks_only_the_source_annotation_as_chosen():
    calls, _ = apply([ann(1, TIGER, at="2"), ann(2, at="1"), ann(3, cancelled=True)])
    assert calls[0][2] == [(1, True), (2, False), (3, False)]
    calls, _ = apply([ann(1, TIGER)], truth=[TIGER_BOX])  # imported truth: nobody's
    assert calls[0][2] == [(1, False)]


def test_the_applier_reports_disagreements():
    _, result = apply([ann(1, TIGER, at="2", who="b@x.org"), ann(2, at="1")])
    (d,) = result.disagreements
    assert (d.image_id, d.task_id, d.chosen_annotation, d.chosen_annotator) == (5, 1, 1, "b@x.org")
    assert d.others == [{"annotation_id": 2, "annotator": "a@x.org", "n_boxes": 0}]


def test_a_task_without_a_catalog_image_is_recorded_but_not_counted():
    calls, result = apply([ann(1, TIGER)], image_id=None)
    assert len(calls) == 1 and (result.updated_images, result.boxes) == (0, 0)
