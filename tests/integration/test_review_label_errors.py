"""The `likely-label-errors` view in a REAL FiftyOne: the images whose ground truth the
model disputes, most likely first, with the suspect boxes on the sample."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from review_cases import IVORY_BOX, RESIN_BOX, H, W, build_case

from workbench.catalog import Box
from workbench.cli import cli
from workbench.review import build_review, describe_review
from workbench.review.selection import select_review
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _rel(box):
    x1, y1, x2, y2 = box
    return [x1 / W, y1 / H, (x2 - x1) / W, (y2 - y1) / H]


def test_view_orders_images_by_label_error_score_and_marks_the_suspect_boxes(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["ivory", "resin"]))
    ids = build_case(ws, tmp_path / "images")
    summary = build_review(ws, model="v1")
    assert "likely-label-errors" in summary["views"]
    assert summary["label_errors"] == {
        "images": 3,
        "suspects": 4,
        "thresholds": {"match_iou": 0.5, "band_low": 0.1, "min_confidence": 0.5, "min_score": 0.3},
    }
    # v1 on the case (review_cases.py): "two" has its resin box unseen (extra, 1.0) and its
    # ivory box called resin (wrong_class 0.85 - 0.15); "one" a confident resin box over
    # no label (missing 0.95); "three" (no boxes) an ivory at 0.5 (missing)
    order = [s["image_id"] for s in select_review(ws, view="likely-label-errors")["samples"]]
    assert order == [ids["two"], ids["one"], ids["three"]]

    samples = {s["image_id"]: s for s in describe_review(ws)["samples"]}
    two = samples[ids["two"]]
    assert two["label_error_score"] == pytest.approx(1.0)
    got = sorted(
        (d["label"], d["gt_label"], round(d["confidence"], 3), [round(v, 6) for v in d["bounding_box"]])
        for d in two["label_errors"]
    )  # fmt: skip
    assert got == [
        ("extra", "resin", 1.0, [round(v, 6) for v in _rel(RESIN_BOX)]),
        ("wrong_class", "ivory", 0.7, [round(v, 6) for v in _rel(IVORY_BOX)]),
    ]
    assert [d.get("predicted") for d in sorted(two["label_errors"], key=lambda d: d["label"])] == [
        None,
        "resin",
    ]
    assert samples[ids["one"]]["label_error_score"] == pytest.approx(0.95)
    assert [d["label"] for d in samples[ids["one"]]["label_errors"]] == ["missing"]
    # not annotated: not checked at all; the duplicate: not active
    assert samples[ids["four"]]["label_errors"] is None
    assert samples[ids["five"]]["label_error_score"] is None

    # the annotator fixes "two": a rebuild rewrites that sample only, and it leaves the view
    with ws.open_catalog() as catalog:
        catalog.replace_boxes(ids["two"], [Box("resin", *IVORY_BOX)])
    again = build_review(ws, model="v1")
    assert again["sync"]["updated"] == 1
    assert describe_review(ws)["views"]["likely-label-errors"] == sorted([ids["one"], ids["three"]])


def test_wb_review_takes_the_errors_thresholds_for_the_view_and_send(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["ivory", "resin"]))
    ids = build_case(ws, tmp_path / "images")
    base = ["-w", str(ws.root), "review", "--no-launch", "--no-progress", "--model", "v1"]
    run = CliRunner().invoke(cli, [*base, "--min-score", "0.96", "--json"])
    assert run.exit_code == 0, run.output
    errors = json.loads(run.stdout)["label_errors"]
    # only "two"'s extra resin box (1.0) scores >= 0.96 (see the test above)
    assert (errors["images"], errors["suspects"]) == (1, 1)
    assert errors["thresholds"]["min_score"] == 0.96
    selected = select_review(ws, view="likely-label-errors")
    assert [s["image_id"] for s in selected["samples"]] == [ids["two"]]
    # what `wb review send likely-label-errors` marks with
    assert selected["label_error_thresholds"]["min_score"] == 0.96

    bad = CliRunner().invoke(cli, [*base, "--band-low", "0.6", "--match-iou", "0.5"])
    assert bad.exit_code == 1
    assert "need 0 < band_low (0.6) < match_iou (0.5) <= 1" in bad.output
