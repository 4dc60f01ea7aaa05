"""`wb evaluate` plumbing: which catalog images count, label levels, reports, the CLI.

The model here is a tiny, exact "detector" of coloured rectangles (red = cat,
blue = dog), so expected figures are known; the real Faster R-CNN is exercised in
tests/integration/test_evaluate_model.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.catalog.records import Box, ImageRecord
from workbench.detection import evaluate as ev
from workbench.detection.report import load_report
from workbench.taxonomy import Taxonomy

COLOURS = {"cat": (220, 20, 20), "dog": (20, 20, 220)}


class ColourPredictor:
    """Finds the red and blue rectangles of an image; one detection per colour present."""

    classes = ["cat", "dog"]
    level = "species"

    def __init__(self, score: float = 0.9, shift: int = 0):
        self.score, self.shift = score, shift

    def predict(self, images):
        out = []
        for img in images:
            a = np.asarray(img).astype(int)
            dets = []
            for label, rgb in COLOURS.items():
                ys, xs = np.nonzero(np.abs(a - rgb).sum(axis=2) < 60)
                if len(xs):
                    dets.append(
                        {
                            "label": label,
                            "x1": float(xs.min()) + self.shift,
                            "y1": float(ys.min()),
                            "x2": float(xs.max() + 1) + self.shift,
                            "y2": float(ys.max() + 1),
                            "score": self.score,
                            "probs": {label: self.score},
                        }
                    )
            out.append(dets)
        return out


def draw(path, boxes):
    img = Image.new("RGB", (64, 48), (255, 255, 255))
    for b in boxes:
        img.paste(COLOURS[b.label], (int(b.x1), int(b.y1), int(b.x2), int(b.y2)))
    img.save(path)


def add(
    catalog, tmp_path, name, label, boxes, split="test", status="active", annotated=True, drawn=None
):
    path = tmp_path / f"{name}.png"
    draw(path, boxes if drawn is None else drawn)
    return catalog.add_image(
        ImageRecord(
            id=None,
            path=str(path),
            width=64,
            height=48,
            label=label,
            status=status,
            annotated=annotated,
            split=split,
        ),
        boxes=boxes if annotated else None,
    )


@pytest.fixture
def ws(workspace_factory):
    return workspace_factory(classes=["cat", "dog"])


def handle(predictor=None, version="v1"):
    p = predictor or ColourPredictor()
    return ev.ModelHandle(version=version, classes=list(p.classes), level=p.level, predictor=p)


def test_evaluates_only_active_annotated_images_of_the_split(ws, tmp_path):
    with ws.open_catalog() as catalog:
        add(catalog, tmp_path, "cat", "cat", [Box("cat", 5, 5, 30, 30)])
        add(catalog, tmp_path, "dog", "dog", [Box("dog", 10, 10, 40, 40)])
        add(catalog, tmp_path, "bg", "background", [])
        add(catalog, tmp_path, "val", "cat", [Box("cat", 5, 5, 30, 30)], split="val")
        add(
            catalog,
            tmp_path,
            "dup",
            "dog",
            [Box("dog", 1, 1, 9, 9)],
            status="duplicate",
            drawn=[Box("cat", 1, 1, 9, 9)],
        )
        add(catalog, tmp_path, "raw", "dog", [Box("dog", 1, 1, 9, 9)], annotated=False)

        result = ev.evaluate_model(ws, catalog, split="test", model=handle())

    assert result.images == 3
    assert result.mAP50 == 1.0 and result.mAR100 == 1.0 and result.accuracy == 1.0
    assert result.per_class["background"]["accuracy"] == 1.0
    assert result.metrics["model"] == "v1" and result.metrics["split"] == "test"


def test_writes_json_and_charts_that_rebuild_the_result(ws, tmp_path):
    with ws.open_catalog() as catalog:
        add(catalog, tmp_path, "cat", "cat", [Box("cat", 5, 5, 30, 30)])
        # the predictor finds the dog 20 px to the right: IoU 0.2, a miss and a false positive
        add(catalog, tmp_path, "dog", "dog", [Box("dog", 10, 10, 35, 40)])
        result = ev.evaluate_model(ws, catalog, model=handle(ColourPredictor(shift=20)))

    reports = result.info["reports"]
    assert reports["json"].endswith("reports/eval_v1_test.json")
    assert all((ws.reports_dir / p.split("/")[-1]).stat().st_size > 0 for p in reports.values())
    assert open(reports["chart"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    again = load_report(reports["json"])
    assert again.metrics == {k: v for k, v in result.metrics.items() if k != "reports"}
    assert result.per_class["dog"]["AP50"] == 0.0
    labels, cm = result.confusion_labels, result.confusion_matrix
    assert cm[labels.index("dog")][labels.index("background")] >= 1


def test_ground_truth_is_mapped_to_the_models_level(workspace_factory, tmp_path):
    ws = workspace_factory(classes=["x"])
    ws.set_taxonomy(
        Taxonomy.from_dict(
            {
                "species": [
                    {"name": "cat", "categories": ["cat_toy", "cat_real"]},
                    {"name": "dog", "categories": ["dog_real"]},
                ]
            }
        )
    )
    with ws.open_catalog() as catalog:
        add(
            catalog,
            tmp_path,
            "a",
            "cat_toy",
            [Box("cat_toy", 5, 5, 30, 30)],
            drawn=[Box("cat", 5, 5, 30, 30)],
        )
        add(
            catalog,
            tmp_path,
            "b",
            "dog_real",
            [Box("dog_real", 10, 10, 40, 40)],
            drawn=[Box("dog", 10, 10, 40, 40)],
        )

        result = ev.evaluate_model(ws, catalog, model=handle())

    assert result.per_class["cat"]["gt_boxes"] == 1 and result.per_class["dog"]["gt_boxes"] == 1
    assert result.mAP50 == 1.0 and result.accuracy == 1.0
    assert result.metrics["level"] == "species"


def test_empty_split_says_what_to_do(ws, tmp_path):
    with ws.open_catalog() as catalog:
        add(catalog, tmp_path, "cat", "cat", [Box("cat", 5, 5, 30, 30)], split="train")
        with pytest.raises(
            ev.EvaluationError, match="no annotated, active images in the test split"
        ):
            ev.evaluate_model(ws, catalog, model=handle())


def test_outside_folder_set_gives_image_accuracy_only(ws, tmp_path):
    root = tmp_path / "outside"
    for label, boxes in (
        ("cat", [Box("cat", 2, 2, 20, 20)]),
        ("dog", [Box("cat", 2, 2, 20, 20)]),
        ("background", []),
    ):
        (root / label).mkdir(parents=True)
        draw(root / label / "1.png", boxes)

    result = ev.evaluate_outside(ws, None, root, "folders", model=handle())

    assert result.images == 3 and result.mAP50 is None
    assert result.per_class["cat"]["accuracy"] == 1.0 and result.per_class["dog"]["accuracy"] == 0.0
    assert result.accuracy == pytest.approx(2 / 3, abs=1e-6)
    assert result.metrics["split"] == "outside" and result.metrics["format"] == "folders"
    assert result.info["reports"]["json"].endswith("eval_v1_outside-outside.json")


def test_outside_coco_set_gives_box_metrics(ws, tmp_path):
    draw(tmp_path / "a.png", [Box("cat", 2, 2, 20, 20), Box("dog", 30, 10, 60, 40)])
    (tmp_path / "set.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 18, 18]},
                    {"id": 2, "image_id": 1, "category_id": 2, "bbox": [30, 10, 30, 30]},
                ],
                "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            }
        )
    )

    result = ev.evaluate_outside(
        ws, None, tmp_path / "set.json", "coco", model=handle(), save=False
    )

    assert result.mAP50 == 1.0 and result.per_class["dog"]["AR100"] == 1.0


# ---- the command ---------------------------------------------------------------------
@pytest.fixture
def cli_ws(ws, tmp_path, monkeypatch):
    with ws.open_catalog() as catalog:
        add(catalog, tmp_path, "cat", "cat", [Box("cat", 5, 5, 30, 30)])
        add(catalog, tmp_path, "dog", "dog", [Box("dog", 10, 10, 40, 40)])
    versions = {
        "v1": handle(ColourPredictor(), "v1"),
        "v2": handle(ColourPredictor(shift=20), "v2"),
    }
    monkeypatch.setattr(ev, "load_model", lambda _ws, _cat, v: versions[v or "v1"])
    return ws


def invoke(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "evaluate", *args])


def test_cli_json_has_the_issues_shape(cli_ws):
    res = invoke(cli_ws, "--json")

    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"model", "split", "images", "mAP50", "mAP", "mAR100", "per_class", "accuracy"} <= set(
        out
    )
    assert out["model"] == "v1" and out["images"] == 2 and out["mAP50"] == 1.0
    assert out["per_class"]["dog"] == {
        **out["per_class"]["dog"],
        "AP50": 1.0,
        "AR100": 1.0,
        "accuracy": 1.0,
    }


def test_cli_prints_the_table_and_compares_two_versions(cli_ws):
    res = invoke(cli_ws, "--model", "v2", "--compare", "v1")

    assert res.exit_code == 0, res.output
    assert "v2 vs v1" in res.output and "-1.000" in res.output  # v2 misses every box
    assert (cli_ws.reports_dir / "compare_v1_vs_v2_test.png").is_file()

    res = invoke(cli_ws, "--model", "v2", "--compare", "v1", "--json")
    delta = json.loads(res.stdout)["delta"]
    assert delta["mAP50"] == -1.0 and delta["per_class"]["cat"]["AP50"] == -1.0


def test_cli_plain_output_shows_the_study_table(cli_ws):
    res = invoke(cli_ws)
    assert res.exit_code == 0, res.output
    assert (
        "AP@0.5" in res.output
        and "mAP@0.5 1.000" in res.output
        and "eval_v1_test.png" in res.output
    )


def test_cli_images_without_format_is_a_usage_error(cli_ws, tmp_path):
    res = invoke(cli_ws, "--images", str(tmp_path))
    assert res.exit_code == 2
    assert "--images and --format go together" in res.output


def test_cli_empty_split_fails_with_the_reason(cli_ws):
    res = invoke(cli_ws, "--split", "val")
    assert res.exit_code == 1
    assert "no annotated, active images in the val split" in res.output


def test_cli_without_a_promoted_model_says_how_to_get_one(ws):
    res = invoke(ws)  # a fresh workspace: nothing trained, nothing promoted
    assert res.exit_code == 1
    assert "no promoted model yet" in res.output and "wb retrain" in res.output


def test_cli_unknown_version_lists_the_known_ones(ws):
    res = invoke(ws, "--model", "v999")
    assert res.exit_code == 1
    assert "no model version 'v999'" in res.output


@pytest.mark.parametrize(
    "label, boxes, kept",
    [
        ("cat", None, True),
        ("background", [], True),
        (None, [("dog", 0, 0, 5, 5)], True),
        ("kangaroo", None, False),  # a folder class the model does not know
        (None, [("cat", 0, 0, 5, 5), ("emu", 1, 1, 6, 6)], False),  # one unknown box
    ],
)
def test_split_unknown_leaves_out_images_the_model_cannot_get_right(label, boxes, kept):
    gt = None if boxes is None else [Box(*b) for b in boxes]
    items = [ev.EvalItem("1", "/x/1.png", label, gt)]
    scored, left = ev.split_unknown(items, ["cat", "dog"])
    assert (scored == items) is kept and left["images"] == (0 if kept else 1)


def test_split_unknown_counts_images_and_names_classes_once():
    items = [ev.EvalItem(str(i), f"/x/{i}.png", lab, None) for i, lab in enumerate("aabc")]
    scored, left = ev.split_unknown(items, ["c"])
    assert [it.label for it in scored] == ["c"]
    assert left["images"] == 3 and left["classes"] == ["a", "b"]
    assert left["note"] == (
        "left out 3 images of classes the model does not know: a, b (its classes: c); "
        "they are in no score"
    )
