"""The economics of annotation (issue 21, item 2): each submitted box against the boxes
pre-drawn for its task, the prediction it started from, what `wb pull` records, and what
`wb report` sums."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from workbench.catalog.records import AnnotationEconomics, Box, LsAnnotation
from workbench.cli import cli
from workbench.geometry import match_boxes
from workbench.labelstudio.economics import (
    BoxOutcomes,
    classify_boxes,
    record_task_economics,
    recorded_economics,
    started_from,
)
from workbench.labelstudio.report import DEFAULT_SECONDS_PER_BOX, economics_report

pytestmark = pytest.mark.unit

W, H = 200, 100


def box(label, x1, y1, x2, y2):
    return Box(label=label, x1=x1, y1=y1, x2=x2, y2=y2)


def rect(label, x1, y1, x2, y2, rid="r"):
    """A Label Studio rectangle result (percent of a W x H image)."""
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": W,
        "original_height": H,
        "value": {
            "x": 100 * x1 / W,
            "y": 100 * y1 / H,
            "width": 100 * (x2 - x1) / W,
            "height": 100 * (y2 - y1) / H,
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


# ---- the matcher -------------------------------------------------------------------


def test_match_boxes_pairs_each_box_once_best_overlap_first():
    a = [(0, 0, 10, 10), (20, 0, 30, 10)]
    b = [(1, 0, 11, 10), (0, 0, 10, 10), (50, 50, 60, 60)]
    pairs = match_boxes(a, b, 0.3)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]  # (0,1) is exact; box 1 overlaps none
    assert pairs[0][2] == pytest.approx(1.0)


def test_match_boxes_respects_the_threshold_and_the_label_rule():
    a, b = [(0, 0, 10, 10)], [(5, 0, 15, 10)]  # IoU 1/3
    assert match_boxes(a, b, 0.34) == []
    assert len(match_boxes(a, b, 0.33)) == 1
    assert match_boxes(a, b, 0.1, labels=(["cat"], ["dog"])) == []
    assert len(match_boxes(a, b, 0.1, labels=(["cat"], ["cat"]))) == 1


# ---- box outcomes ------------------------------------------------------------------


def test_a_box_submitted_as_drawn_is_kept():
    pre = [box("cat", 10, 10, 50, 50)]
    assert classify_boxes(pre, [box("cat", 10, 10, 50, 50.5)]) == BoxOutcomes(kept=1)


def test_a_box_moved_or_resized_with_its_label_is_moved():
    pre = [box("cat", 10, 10, 50, 50)]
    assert classify_boxes(pre, [box("cat", 14, 12, 56, 50)]) == BoxOutcomes(moved=1)


def test_a_box_given_another_label_is_relabelled_even_if_moved_too():
    pre = [box("cat", 10, 10, 50, 50)]
    assert classify_boxes(pre, [box("dog", 10, 10, 50, 50)]) == BoxOutcomes(relabelled=1)
    assert classify_boxes(pre, [box("dog", 15, 10, 55, 50)]) == BoxOutcomes(relabelled=1)


def test_pre_drawn_boxes_left_out_are_deleted_and_others_are_new():
    pre = [box("cat", 10, 10, 50, 50), box("cat", 100, 10, 150, 60)]
    final = [box("cat", 10, 10, 50, 50), box("dog", 160, 70, 190, 95)]
    assert classify_boxes(pre, final) == BoxOutcomes(kept=1, deleted=1, new=1)


def test_a_box_moved_too_far_counts_as_deleted_and_drawn_new():
    pre = [box("cat", 10, 10, 50, 50)]
    assert classify_boxes(pre, [box("cat", 40, 10, 80, 50)]) == BoxOutcomes(deleted=1, new=1)


def test_same_label_pairs_first_so_a_relabel_does_not_steal_a_moved_box():
    # the pre-drawn cat overlaps a submitted dog exactly and a submitted cat a little less:
    # it pairs with the cat (moved); the dog is drawn new
    pre = [box("cat", 10, 10, 50, 50)]
    final = [box("dog", 10, 10, 50, 50), box("cat", 14, 12, 54, 50)]
    assert classify_boxes(pre, final) == BoxOutcomes(moved=1, new=1)
    # a pre-drawn cat relabelled dog next to a kept dog
    pre = [box("dog", 10, 10, 50, 50), box("cat", 100, 10, 140, 50)]
    final = [box("dog", 10, 10, 50, 50), box("dog", 100, 10, 140, 50)]
    assert classify_boxes(pre, final) == BoxOutcomes(kept=1, relabelled=1)


def test_no_pre_drawn_boxes_means_every_box_is_new_and_nothing_submitted_deletes_all():
    final = [box("cat", 10, 10, 50, 50), box("dog", 60, 10, 90, 50)]
    assert classify_boxes([], final) == BoxOutcomes(new=2)
    assert classify_boxes(final, []) == BoxOutcomes(deleted=2)


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="match_iou <= kept_iou"):
        classify_boxes([], [], kept_iou=0.2, match_iou=0.5)


# ---- which prediction it started from ------------------------------------------------


def test_the_parent_prediction_wins_else_the_latest_made_before_the_annotation():
    preds = [
        {"id": 1, "created_at": "2026-12-01T10:00:00Z", "model_version": "v1"},
        {"id": 2, "created_at": "2026-12-01T12:00:00.5Z", "model_version": "v2"},
        {"id": 3, "created_at": "2026-12-02T09:00:00Z", "model_version": "v3"},
    ]
    ann = {"id": 9, "created_at": "2026-12-01T13:00:00Z"}
    assert started_from(ann, preds)["id"] == 2
    assert started_from({**ann, "parent_prediction": 1}, preds)["id"] == 1
    assert started_from({"id": 9, "created_at": "2026-11-01T00:00:00Z"}, preds) is None
    assert started_from(ann, []) is None


# ---- what pull records ----------------------------------------------------------------


def test_pull_records_each_submitted_annotation_once_and_again_only_when_it_changes(
    workspace_factory,
):
    ws = workspace_factory(classes=["cat", "dog"])
    catalog = ws.open_catalog()
    prediction = {
        "id": 41,
        "created_at": "2026-12-01T10:00:00Z",
        "model_version": "v1",
        "result": [rect("cat", 10, 10, 50, 50, "a"), rect("cat", 100, 10, 150, 60, "b")],
    }
    annotation = {
        "id": 7,
        "created_at": "2026-12-01T11:00:00Z",
        "updated_at": "2026-12-01T11:00:00Z",
        "lead_time": 12.5,
        "result": [rect("cat", 12, 10, 54, 50, "a"), rect("dog", 160, 70, 190, 95, "n")],
    }
    skipped = {"id": 8, "was_cancelled": True, "created_at": "2026-12-01T11:30:00Z"}

    def record(anns):
        return record_task_economics(
            catalog,
            3,
            100,
            None,
            anns,
            [prediction],
            size=(W, H),
            annotators={7: "ann@x"},
            recorded=recorded_economics(catalog, 3),
        )

    assert record([annotation, skipped]) is True
    (row,) = catalog.annotation_economics()
    # lead_time is the annotation's own (ls_annotations, written by pull's applier; the
    # integration test reads it back through wb report): no annotation row here, no seconds
    assert (row.annotation_id, row.annotator, row.lead_time) == (7, "ann@x", None)
    assert (row.prediction_id, row.model_version, row.predrawn, row.final_boxes) == (
        41,
        "v1",
        2,
        2,
    )
    assert (row.kept, row.moved, row.relabelled, row.deleted, row.new) == (0, 1, 0, 1, 1)
    assert record([annotation, skipped]) is False  # a re-run writes nothing
    changed = {**annotation, "updated_at": "2026-12-01T12:00:00Z", "lead_time": None}
    changed["result"] = [rect("cat", 10, 10, 50, 50, "a"), rect("cat", 100, 10, 150, 60, "b")]
    assert record([changed]) is True
    (row,) = catalog.annotation_economics()
    assert (row.kept, row.deleted, row.new) == (2, 0, 0)
    assert record([]) is True  # deleted in Label Studio: its row goes
    assert catalog.annotation_economics() == []
    catalog.close()


# ---- the report -----------------------------------------------------------------------


def row(aid, version, predrawn, final, lead, annotator="a", **outcomes):
    return AnnotationEconomics(
        annotation_id=aid,
        project_id=1,
        task_id=aid,
        image_id=None,
        annotator=annotator,
        updated_at="",
        pulled_at="",
        lead_time=lead,
        prediction_id=aid if version else None,
        model_version=version,
        predrawn=predrawn,
        final_boxes=final,
        **{k: outcomes.get(k, 0) for k in ("kept", "moved", "relabelled", "deleted", "new")},
    )


def store(catalog, r: AnnotationEconomics) -> None:
    """What pull writes for one annotation: its row (with the seconds) and its economics."""
    ann = LsAnnotation(
        r.annotation_id,
        r.task_id,
        r.image_id,
        r.annotator,
        r.updated_at,
        False,
        r.final_boxes,
        False,
        [],
        lead_time=r.lead_time,
    )
    catalog.apply_ls_task(r.project_id, r.task_id, r.image_id, [ann], None, update_truth=False)
    catalog.replace_task_economics(r.project_id, r.task_id, [r])


def test_hours_saved_use_the_seconds_per_box_measured_on_tasks_drawn_from_scratch():
    rows = [
        row(1, None, 0, 2, 20.0, new=2),  # 10 s per box, measured
        row(2, None, 0, 4, 40.0, new=4),
        row(3, "v1", 3, 3, 6.0, annotator="b", kept=2, moved=1),
        row(4, "v1", 2, 3, 12.0, annotator="b", kept=1, deleted=1, new=2),
    ]
    report = economics_report(rows)
    assert report["seconds_per_box"] == {
        "value": 10.0,
        "source": "measured",
        "measured": 10.0,
        "measured_from_annotations": 2,
        "measured_from_boxes": 6,
    }
    none, v1 = report["rounds"]
    assert none["name"] == "none" and none["hours_saved"] is None
    assert none["seconds_per_task_without_predrawn"] == 30.0
    assert none["seconds_per_task_with_predrawn"] is None
    assert (v1["tasks"], v1["kept"], v1["moved"], v1["deleted"], v1["new"]) == (2, 3, 1, 1, 2)
    assert v1["seconds_per_task_with_predrawn"] == 9.0
    # 6 boxes x 10 s = 60 s from scratch, 18 s spent
    assert v1["hours_saved"] == pytest.approx((60 - 18) / 3600)
    assert [a["name"] for a in report["annotators"]] == ["a", "b"]
    assert report["total"]["hours_saved"] == pytest.approx((60 - 18) / 3600)


def test_without_timed_scratch_work_seconds_per_box_is_assumed_or_given():
    rows = [row(3, "v1", 3, 3, 6.0, kept=3)]
    report = economics_report(rows)
    assert report["seconds_per_box"]["source"] == "assumed"
    assert report["seconds_per_box"]["value"] == DEFAULT_SECONDS_PER_BOX
    given = economics_report(rows, seconds_per_box_given=4.0)
    assert given["seconds_per_box"]["source"] == "given"
    assert given["total"]["hours_saved"] == pytest.approx((12 - 6) / 3600)


def test_no_lead_time_or_no_pre_drawn_boxes_gives_n_a_not_zero():
    report = economics_report([row(1, "v1", 2, 2, None, kept=2), row(2, None, 0, 1, None, new=1)])
    assert report["total"]["hours_saved"] is None
    assert report["total"]["seconds_per_task_with_predrawn"] is None
    assert report["total"]["seconds_per_task_without_predrawn"] is None


def test_labels_saved_by_the_order_come_from_al_simulations_results(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "setup": {"dataset": "demo"},
                "table": {
                    "uncertainty": {"labels_needed": 90.0, "target_mAP50": 0.3},
                    "random": {"labels_needed": 120.0, "target_mAP50": 0.3},
                },
            }
        )
    )
    order = economics_report([], al_results=results)["labels_saved_by_order"]
    (s,) = order["strategies"]
    assert (s["strategy"], s["labels_saved"], s["share_saved"]) == ("uncertainty", 30.0, 0.25)
    missing = economics_report([], al_results=tmp_path / "nope.json")["labels_saved_by_order"]
    assert not missing["available"] and "al_simulation.py" in missing["how"]


# ---- the command --------------------------------------------------------------------------


def test_wb_report_prints_the_table_json_and_writes_the_chart(workspace_factory):
    ws = workspace_factory(classes=["cat", "dog"])
    catalog = ws.open_catalog()
    store(catalog, row(1, None, 0, 2, 20.0, new=2))
    store(catalog, row(3, "v1", 3, 3, 6.0, kept=3))
    catalog.close()
    runner = CliRunner()
    run = runner.invoke(cli, ["--workspace", str(ws.root), "report"])
    assert run.exit_code == 0, run.output
    assert "per round" in run.output and "v1" in run.output
    assert "hours saved by pre-drawn boxes: 0.007 h" in run.output  # (30 - 6) / 3600
    assert "measured on the 1 timed annotations drawn without pre-drawn boxes" in run.output
    assert "labels saved by the annotation order: n/a" in run.output
    assert (ws.reports_dir / "economics.png").stat().st_size > 1000
    run = runner.invoke(cli, ["--workspace", str(ws.root), "report", "--json"])
    assert run.exit_code == 0, run.output
    data = json.loads(run.output)
    assert data["rounds"][1]["name"] == "v1" and data["rounds"][1]["kept"] == 3


def test_wb_report_refuses_a_results_file_that_is_not_al_simulations(workspace_factory, tmp_path):
    ws = workspace_factory(classes=["cat"])
    bad = tmp_path / "results.json"
    bad.write_text('{"curves": {}}')
    run = CliRunner().invoke(cli, ["--workspace", str(ws.root), "report", "--al-results", str(bad)])
    assert run.exit_code == 1
    assert "is not an al_simulation results.json" in run.output


def test_wb_report_refuses_a_seconds_per_box_of_zero(workspace_factory):
    ws = workspace_factory(classes=["cat"])
    run = CliRunner().invoke(cli, ["--workspace", str(ws.root), "report", "--seconds-per-box", "0"])
    assert run.exit_code == 2 and "--seconds-per-box" in run.output


def test_wb_report_on_a_workspace_that_never_pulled_says_what_to_do(workspace_factory):
    ws = workspace_factory(classes=["cat"])
    run = CliRunner().invoke(cli, ["--workspace", str(ws.root), "report"])
    assert run.exit_code == 0
    assert "no pulled annotations yet" in run.output and "wb pull" in run.output


# ---- the demo -------------------------------------------------------------------------------


def test_the_demos_annotators_report_times_from_their_model_of_the_work():
    from workbench.demo import SIMULATED_SECONDS, simulated_lead_time

    scratch = simulated_lead_time({"new": 3}, task_id=5)
    base = SIMULATED_SECONDS["task"] + 3 * SIMULATED_SECONDS["new"]
    assert 0.8 * base <= scratch <= 1.2 * base
    assert simulated_lead_time({"new": 3}, task_id=5) == scratch  # the same task, same time
    corrected = simulated_lead_time({"kept": 2, "moved": 1}, task_id=5)
    assert corrected < scratch


def test_the_demos_round_two_line_comes_from_what_pull_recorded_and_says_simulated(
    workspace_factory,
):
    from workbench.demo import _economics

    ws = workspace_factory(classes=["cat", "dog"])
    catalog = ws.open_catalog()
    store(catalog, row(1, None, 0, 2, 20.0, new=2))  # round 1
    store(catalog, row(3, "v1", 3, 3, 6.0, kept=3))  # round 2
    out = _economics(catalog, 1, {3})
    assert out["tasks"] == 1 and out["kept"] == 3
    assert out["hours_saved"] == pytest.approx((3 * 10 - 6) / 3600)
    assert "measured on the 1 timed annotations drawn without pre-drawn boxes" in out["line"]
    assert "simulated by its annotators" in out["line"] and "not measured on people" in out["line"]
    catalog.close()


def test_suspect_markers_in_the_prediction_are_not_pre_drawn_model_boxes():
    from workbench.labelstudio.economics import annotation_economics
    from workbench.labelstudio.tasks import SUSPECT_ID_PREFIX

    def rect(item_id, label, x, meta=None):
        r = {
            "id": item_id,
            "type": "rectanglelabels",
            "from_name": "label",
            "to_name": "image",
            "value": {"x": x, "y": 10, "width": 20, "height": 20, "rectanglelabels": [label]},
        }
        return r | ({"meta": {"text": meta}} if meta else {})

    model = rect("wb1p0", "tiger", 10, "Suspect missing 0.9: a tiger")
    marker = rect(f"{SUSPECT_ID_PREFIX}1x0", "elephant", 50, "Suspect extra 0.8: ...")
    pred = {"id": 5, "model_version": "v2", "result": [model, marker]}
    # accepted as shown: the model's tiger kept, the marker kept (so drawn new)
    ann = {"id": 9, "result": [model, marker], "parent_prediction": 5, "lead_time": 3.0}
    row = annotation_economics(
        ann,
        [pred],
        project_id=1,
        task_id=2,
        image_id=3,
        annotator="a",
        size=(100, 100),
        pulled_at="now",
    )
    assert (row.predrawn, row.kept, row.new, row.deleted) == (1, 1, 1, 0)
