"""`wb review errors` through click: the table, --json, the thresholds, and the three
reasons it has nothing to check (no detector, no ground truth, no predictions)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from workbench.catalog.records import Box, ImageRecord
from workbench.cli import cli
from workbench.review.label_errors import suspect_note

pytestmark = pytest.mark.unit


def pred(label, x1, y1, x2, y2, score=0.9, probs=None):
    return {"label": label, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": score,
            "probs": probs or {label: score}}  # fmt: skip


def add(catalog, name, boxes, annotated=True):
    rec = ImageRecord(
        id=None, path=f"/photos/{name}.jpg", sha256=name, file_size=1, mtime=0.0,
        width=100, height=100, label="kangaroo", status="active", source_format="voc",
        annotated=annotated,
    )  # fmt: skip
    return catalog.add_image(rec, boxes if annotated else None)


@pytest.fixture
def ws(workspace_factory):
    return workspace_factory(classes=["kangaroo", "wallaby"])


def seed(ws, promote=True, predictions=True):
    """Four annotated images: clean, a missing box, an extra box, a wrong class."""
    with ws.open_catalog() as cat:
        ids = {
            "clean": add(cat, "clean", [Box("kangaroo", 10, 10, 50, 50)]),
            "missing": add(cat, "missing", [Box("kangaroo", 10, 10, 50, 50)]),
            "extra": add(
                cat, "extra", [Box("kangaroo", 10, 10, 50, 50), Box("kangaroo", 70, 70, 95, 95)]
            ),  # fmt: skip
            "swap": add(cat, "swap", [Box("wallaby", 10, 10, 50, 50)]),
        }
        cat.add_model("v001", None, "species", ["kangaroo", "wallaby"], {}, {})
        if promote:
            cat.promote_model("v001")
        if predictions:
            cat.store_predictions(
                "v001",
                {
                    ids["clean"]: [pred("kangaroo", 10, 10, 50, 50, 0.95)],
                    ids["missing"]: [
                        pred("kangaroo", 10, 10, 50, 50),
                        pred("kangaroo", 60, 60, 90, 90, 0.8),
                    ],  # noqa: E501
                    ids["extra"]: [pred("kangaroo", 10, 10, 50, 50)],
                    ids["swap"]: [
                        pred("kangaroo", 10, 10, 50, 50, 0.9, {"kangaroo": 0.9, "wallaby": 0.05})
                    ],  # noqa: E501
                },
            )
    return ids


def run(ws, *args):
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "review", "errors", *args])


def test_table_lists_each_planted_error_and_not_the_clean_image(ws):
    ids = seed(ws)
    res = run(ws)
    assert res.exit_code == 0, res.output
    assert "Label errors by model v001: 3 suspects scoring >= 0.3 in 3 of 4 annotated" in res.output
    table = [ln.split() for ln in res.output.splitlines() if re.match(r"\s*[01]\.\d{3}\s", ln)]
    rows = {r[1]: r[2] for r in table}
    assert rows == {"missing": str(ids["missing"]), "extra": str(ids["extra"]),
                    "wrong_class": str(ids["swap"])}  # fmt: skip
    assert "70,70,95,95" in res.output  # the extra box
    assert "clean.jpg" not in res.output


def test_json_kind_and_thresholds(ws):
    ids = seed(ws)
    res = run(ws, "--json", "--kind", "missing")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [(s["image_id"], s["kind"]) for s in out["suspects"]] == [(ids["missing"], "missing")]
    assert out["suspects"][0]["box"] == [60, 60, 90, 90]
    assert out["suspects"][0]["path"] == "/photos/missing.jpg"
    assert out["thresholds"]["min_confidence"] == 0.5 and out["thresholds"]["kind"] == "missing"
    # the missing box was predicted at 0.8: a stricter confidence drops it
    res = run(ws, "--json", "--kind", "missing", "--min-confidence", "0.85")
    assert json.loads(res.stdout)["suspects"] == []


def test_top_cuts_the_table_and_says_how_many_more(ws):
    seed(ws)
    res = run(ws, "--top", "1")
    assert res.exit_code == 0, res.output
    assert "... 2 more (--top 0 shows all)" in res.output


def test_no_promoted_model_says_how_to_get_one(ws):
    seed(ws, promote=False)
    res = run(ws)
    assert res.exit_code == 1
    assert "no promoted detector yet" in res.output and "wb retrain" in res.output
    res = run(ws, "--version", "v404")
    assert res.exit_code == 1
    assert "no detector version 'v404' in the catalog; detectors: v001" in res.output


def test_no_ground_truth_says_how_to_get_some(ws):
    with ws.open_catalog() as cat:
        add(cat, "raw", None, annotated=False)
        cat.add_model("v001", None, "species", ["kangaroo"], {}, {})
        cat.promote_model("v001")
    res = run(ws)
    assert res.exit_code == 1
    assert "no annotated images in the catalog" in res.output and "wb ingest" in res.output


def test_no_predictions_names_the_command_that_makes_them(ws):
    seed(ws, predictions=False)
    res = run(ws)
    assert res.exit_code == 1
    assert "model v001 has no stored predictions on the 4 annotated images" in res.output
    assert "`wb review --no-launch`" in res.output


def test_bad_thresholds_are_refused(ws):
    seed(ws)
    res = run(ws, "--band-low", "0.6", "--match-iou", "0.5")
    assert res.exit_code == 1
    assert "need 0 < band_low (0.6) < match_iou (0.5) <= 1" in res.output


def test_note_names_each_suspect_with_its_box():
    from workbench.review.label_errors import Suspect

    note = suspect_note(
        "v002",
        [
            Suspect(1, "missing", 0.91, "kangaroo", (60.2, 60, 90, 90), "kangaroo"),
            Suspect(1, "wrong_class", 0.85, "wallaby", (10, 10, 50, 50), "kangaroo"),
        ],
    )
    assert note == (
        "Possible label errors (model v002): missing 0.91: a kangaroo the model sees here has "
        "no box at 60,60-90,90; wrong_class 0.85: this wallaby box looks like a kangaroo at "
        "10,10-50,50"
    )
