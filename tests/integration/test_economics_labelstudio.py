"""The economics of annotation against a REAL Label Studio: push with the model's boxes
pre-drawn, annotate through the API with a lead_time (boxes kept, moved, deleted, drawn
new; one task drawn from scratch), pull, and read `wb report --json`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from labelstudio_data import (
    MODEL_VERSION,
    add_images,
    add_promoted_model,
    annotation_rect,
    draw_images,
)

from workbench.cli import cli
from workbench.labelstudio import connect, open_project, pull, push
from workbench.labelstudio.tasks import IMAGE_ID_FIELD
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration


def _as_dict(x):
    return x if isinstance(x, dict) else x.dict()


def test_pull_records_box_outcomes_and_lead_time_and_wb_report_sums_them(label_studio, tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    catalog = ws.open_catalog()
    ids = add_images(catalog, draw_images(label_studio.images_dir("economics"), 3, rotated=()))
    # image ids[0]: one pre-drawn elephant; ids[1]: an elephant and a tiger
    predictions = add_promoted_model(catalog, ids)
    client, conn = connect(ws)
    pushed = push(ws, catalog, client, conn)
    assert pushed.with_predictions == 3
    ls = label_studio.client
    tasks = {
        t.data[IMAGE_ID_FIELD]: t for t in ls.tasks.list(project=pushed.project_id, fields="all")
    }
    size = {i: (catalog.get_image(i).width, catalog.get_image(i).height) for i in ids}

    # kept as drawn, 10 s
    kept_task = tasks[ids[0]]
    pred = _as_dict(kept_task.predictions[0])
    ls.annotations.create(
        id=kept_task.id,
        result=[{k: v for k, v in r.items() if k != "score"} for r in pred["result"]],
        lead_time=10.0,
        parent_prediction=pred["id"],
    )
    # the elephant moved, the tiger deleted, a pangolin drawn new: 30 s
    w, h = size[ids[1]]
    e = predictions[ids[1]][0]
    edited_task = tasks[ids[1]]
    ls.annotations.create(
        id=edited_task.id,
        result=[
            annotation_rect("elephant", e["x1"] + 6, e["y1"], e["x2"] + 6, e["y2"] + 4, w, h),
            annotation_rect("pangolin", 2, h - 30, 25, h - 2, w, h),
        ],
        lead_time=30.0,
        parent_prediction=_as_dict(edited_task.predictions[0])["id"],
    )
    # drawn from scratch (its prediction deleted first), two boxes in 40 s; started from
    # nothing, so no parent_prediction
    scratch_task = tasks[ids[2]]
    for p in scratch_task.predictions:
        ls.predictions.delete(id=_as_dict(p)["id"])
    w, h = size[ids[2]]
    ls.annotations.create(
        id=scratch_task.id,
        result=[
            annotation_rect("tiger", 1, 1, 20, 20, w, h),
            annotation_rect("tiger", 30, 30, 50, 50, w, h),
        ],
        lead_time=40.0,
    )

    pull(open_project(ws, client, conn), catalog)
    rows = {r.task_id: r for r in catalog.annotation_economics()}
    assert len(rows) == 3
    k, m, s = rows[kept_task.id], rows[edited_task.id], rows[scratch_task.id]
    assert (k.model_version, k.predrawn, k.kept, k.lead_time) == (MODEL_VERSION, 1, 1, 10.0)
    assert (m.predrawn, m.kept, m.moved, m.relabelled, m.deleted, m.new) == (2, 0, 1, 0, 1, 1)
    assert (s.model_version, s.predrawn, s.new, s.lead_time) == (None, 0, 2, 40.0)
    assert k.annotator == "admin@workbench.local"

    pull(open_project(ws, client, conn), catalog)  # a re-run adds nothing
    assert len(catalog.annotation_economics()) == 3
    catalog.close()

    run = CliRunner().invoke(cli, ["--workspace", str(ws.root), "report", "--json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.output)
    assert report["seconds_per_box"]["source"] == "measured"
    assert report["seconds_per_box"]["value"] == pytest.approx(20.0)  # 40 s / 2 boxes
    rounds = {g["name"]: g for g in report["rounds"]}
    v = rounds[MODEL_VERSION]
    assert (v["tasks"], v["kept"], v["moved"], v["deleted"], v["new"]) == (2, 1, 1, 1, 1)
    assert v["seconds_per_task_with_predrawn"] == pytest.approx(20.0)
    # 3 submitted boxes x 20 s from scratch against the 40 s they took
    assert v["hours_saved"] == pytest.approx((3 * 20 - 40) / 3600)
    assert rounds["none"]["seconds_per_task_without_predrawn"] == pytest.approx(40.0)
    assert rounds["none"]["hours_saved"] is None
    assert report["labels_saved_by_order"]["available"] is False
    assert (ws.reports_dir / "economics.png").is_file()
