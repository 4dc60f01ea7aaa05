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


# ---- the workspace report and `wb agreement` --------------------------------------


def _annotated_workspace(workspace_factory):
    """A workspace whose project 4 holds: task 11 (ann and bob agree), task 12 (bob missed
    a box), task 13 (ann alone); the model's boxes were pre-drawn on task 11 and 12."""
    from workbench.catalog.records import ImageRecord

    ws = workspace_factory(classes=["ivory", "scales"])
    ws.set_project(4, "species")
    with ws.open_catalog() as catalog:
        ids = [
            catalog.add_image(ImageRecord(id=None, path=f"/photos/{i}.jpg", width=W, height=H))
            for i in range(3)
        ]
        catalog.store_predictions(
            "v001",
            {
                ids[0]: [{"label": "ivory", "x1": 10, "y1": 10, "x2": 60, "y2": 60, "score": 0.9}],
                ids[1]: [
                    {"label": "ivory", "x1": 10, "y1": 10, "x2": 60, "y2": 60, "score": 0.9},
                    {"label": "scales", "x1": 0, "y1": 0, "x2": 5, "y2": 5, "score": 0.1},
                ],
            },
        )
        catalog.record_ls_tasks(4, [(ids[0], 11, "v001"), (ids[1], 12, "v001"), (ids[2], 13, None)])
        tasks = {
            11: [
                ann(1, "ann@x", [IVORY, SCALES], lead_time=30.0),
                ann(2, "bob@x", [IVORY, SCALES]),
            ],
            12: [ann(3, "ann@x", [IVORY, SCALES], lead_time=50.0), ann(4, "bob@x", [SCALES])],
            13: [ann(5, "ann@x", [IVORY])],
        }
        for (task_id, anns), image_id in zip(tasks.items(), ids):
            for a in anns:
                a.task_id, a.image_id = task_id, image_id
            catalog.apply_ls_task(4, task_id, image_id, anns, None, update_truth=False)
    return ws, ids


def test_report_per_task_and_per_annotator(workspace_factory):
    from workbench.labelstudio.agreement import workspace_agreement

    ws, ids = _annotated_workspace(workspace_factory)
    with ws.open_catalog() as catalog:
        report = workspace_agreement(ws, catalog)
    scores = {t.task_id: t.score for t in report.tasks}
    assert scores[11] == pytest.approx(1.0) and scores[12] == pytest.approx(2 / 3)
    assert scores[13] is None
    assert [t.task_id for t in report.disagreements] == [12]
    assert report.mean_agreement == pytest.approx((1 + 2 / 3) / 2)
    ann_, bob = report.annotators
    assert (ann_.annotator, ann_.tasks, ann_.shared_tasks) == ("ann@x", 3, 2)
    assert ann_.agreement == pytest.approx((1 + 2 / 3) / 2)
    # pre-drawn: task 11's ivory, task 12's ivory (its 0.1 box was never shown); task 13
    # had no prediction, so it does not count
    assert (ann_.predrawn_boxes, ann_.predrawn_kept) == (2, 2)
    assert (bob.predrawn_boxes, bob.predrawn_kept, bob.acceptance) == (2, 1, 0.5)
    assert ann_.seconds_per_task == 40.0 and ann_.timed_tasks == 2
    assert bob.seconds_per_task is None  # no lead_time recorded: n/a


def test_agreement_command_prints_the_table_and_json(workspace_factory):
    import json

    from click.testing import CliRunner

    from workbench.cli import cli

    ws, ids = _annotated_workspace(workspace_factory)
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "agreement"])
    assert r.exit_code == 0, r.output
    assert "3 annotated tasks, 2 with several annotators: mean agreement 0.83; 1 below 0.8" in (
        r.output
    )
    assert "ann@x" in r.output and "1/2 (0.50)" in r.output
    assert "not sent" in r.output and "wb agreement send" in r.output
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "agreement", "--threshold", "0.5", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["disagreements"] == [] and out["overlap_tasks"] == 2
    by_task = {t["task_id"]: t for t in out["tasks"]}
    assert by_task[13]["score"] is None  # one annotator: n/a, not 0 or 1


def test_agreement_without_a_project_says_to_push_first(workspace_factory):
    from click.testing import CliRunner

    from workbench.cli import cli

    ws = workspace_factory()
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "agreement"])
    assert r.exit_code == 1
    assert "no Label Studio project yet: run `wb push --overlap 2`" in r.output


def test_agreement_send_with_nothing_below_the_threshold_sends_nothing(workspace_factory):
    from click.testing import CliRunner

    from workbench.cli import cli

    ws, _ = _annotated_workspace(workspace_factory)
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "agreement", "send", "--threshold", "0.5"])
    assert r.exit_code == 0, r.output
    assert "no disagreements to send: no task's agreement is below 0.5" in r.output
    assert ws.get("labelstudio", "expert_review_project_id") is None


def test_agreement_pull_before_any_send_says_to_send_first(workspace_factory):
    from click.testing import CliRunner

    from workbench.cli import cli

    ws, _ = _annotated_workspace(workspace_factory)
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "agreement", "pull"])
    assert r.exit_code == 1
    assert "nothing was sent to expert review yet: run `wb agreement send` first" in r.output
