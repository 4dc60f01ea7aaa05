"""`wb explain`: heatmaps per detection through the grad-cam package, the inside-box
check, the pictures, and the bad inputs a user can give.

The models are tiny (64 px, random weights) with the box classifier's bias set so that
they find boxes on any photo: what is tested is the plumbing (sizes, ranges, one map per
box, files, messages), which does not depend on what the weights learned.
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli
from workbench.detection.backbones import default_cam_layer, list_backbones
from workbench.detection.metrics import box_outcomes
from workbench.detection.registry import Registry
from workbench.detection.synthetic import add_synthetic_images
from workbench.detection.train import TrainConfig, build_model
from workbench.explain.evidence import (
    DEFAULT_MIN_INSIDE_SHARE,
    box_area_share,
    flagged_by_class,
    inside_share,
    is_flagged,
)

pytestmark = pytest.mark.unit
torch.set_num_threads(1)
CLASSES = ["red", "blue"]


# ---- the inside-box check on hand-made heatmaps ------------------------------------
def test_inside_share_is_the_energy_inside_the_box_over_all_of_it():
    heat = np.zeros((10, 20), dtype=np.float32)
    heat[2:5, 3:7] = 1.0  # 12 units inside the box below
    heat[8, 15:19] = 0.5  # 2 units outside
    assert inside_share(heat, (3, 2, 7, 5)) == pytest.approx(12 / 14)
    # a fractional box covers the pixels it touches; a box past the edge is clipped
    assert inside_share(heat, (2.5, 1.2, 7.0, 5.0)) == pytest.approx(12 / 14)
    assert inside_share(heat, (14, 7, 30, 12)) == pytest.approx(2 / 14)
    assert inside_share(np.zeros((4, 4)), (0, 0, 2, 2)) is None  # nothing to share
    assert box_area_share((3, 2, 7, 5), 20, 10) == pytest.approx(12 / 200)


def test_a_box_is_flagged_when_its_evidence_is_mostly_outside():
    assert DEFAULT_MIN_INSIDE_SHARE == 0.5
    assert is_flagged(0.49) is True and is_flagged(0.5) is False
    assert is_flagged(0.7, threshold=0.8) is True
    assert is_flagged(None) is None
    rows = [
        {"label": "ivory", "flagged": True},
        {"label": "ivory", "flagged": False},
        {"label": "ivory", "flagged": True},
        {"label": "pangolin", "flagged": None},  # an empty map: counted, not flagged
    ]
    assert flagged_by_class(rows) == {
        "ivory": {"detections": 3, "flagged": 2, "share_flagged": 0.6667},
        "pangolin": {"detections": 1, "flagged": 0, "share_flagged": 0.0},
    }


def test_tp_and_fp_follow_cocos_class_wise_greedy_rule():
    truth = [("ivory", (0, 0, 10, 10)), ("resin", (20, 0, 30, 10))]
    dets = [
        ("ivory", (1, 0, 10, 10), 0.6),  # a second box on the ivory: FP (taken by the 0.9)
        ("ivory", (0, 0, 10, 10), 0.9),
        ("ivory", (20, 0, 30, 10), 0.8),  # right place, wrong class
        ("resin", (21, 0, 30, 10), 0.5),
    ]
    assert box_outcomes(dets, truth) == ["fp", "tp", "fp", "tp"]
    assert box_outcomes(dets, []) == ["fp"] * 4


# ---- real CAMs on tiny models --------------------------------------------------------
def _register(ws, backbone: str = "mobilenet_v3", finds: bool = True, seed: int = 0) -> str:
    """A 64 px detector with random weights, registered and promoted. ``finds``: the
    classifier's bias makes every proposal a confident box; else none is."""
    # two proposals per image: a few boxes (gradient CAMs cost a pass per box)
    config = TrainConfig(
        backbone=backbone, image_size=64, weights="none", rpn_post_nms_top_n_test=2
    )
    torch.manual_seed(seed)
    model = build_model(config, CLASSES)
    bias = [-3.0, 1.0, 1.0] if finds else [8.0, -8.0, -8.0]
    model.roi_heads.box_predictor.cls_score.bias.data[:] = torch.tensor(bias)
    path = ws.root / "w.pt"
    torch.save(model.state_dict(), path)
    with ws.open_catalog() as catalog:
        registry = Registry.of(ws, catalog)
        mv = registry.register(path, config.to_dict(), CLASSES, "species", {}, {})
        registry.promote(mv.version)
    path.unlink()
    return mv.version


@pytest.fixture
def case(workspace_factory, tmp_path):
    """A workspace with 3 annotated and 1 unannotated synthetic images (96 px) and a
    promoted tiny model that finds boxes."""
    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        ids = add_synthetic_images(catalog, tmp_path / "img", CLASSES, 3, unannotated=1)
    version = _register(ws)
    return ws, ids, version, tmp_path / "img"


def _explainer(ws, method, **kw):
    from workbench.detection.predict import Predictor
    from workbench.explain.cam import Explainer

    with ws.open_catalog() as catalog:
        predictor = Predictor.from_registry(ws, catalog)
    return Explainer(predictor, method, min_score=0.0, **kw)


@pytest.mark.parametrize("method", ["eigencam", "gradcam"])
def test_one_heatmap_per_box_of_the_images_size_with_values_in_0_1(case, method):
    ws, _, _, folder = case
    image = Image.open(next(folder.glob("object-*.png"))).convert("RGB")
    image = image.crop((0, 0, 96, 72))  # not square: torchvision pads it before the backbone
    boxes = _explainer(ws, method).explain(image)
    assert 1 <= len(boxes) <= 4  # two proposals, a box per class each at most
    for b in boxes:
        assert b.heatmap.shape == (72, 96)
        assert b.heatmap.dtype == np.float32
        assert 0.0 <= b.heatmap.min() and b.heatmap.max() <= 1.0
        assert b.heatmap.max() > 0.5  # a map, not an empty array
    if method == "eigencam":  # gradient-free: the map does not depend on the box
        assert all(np.array_equal(b.heatmap, boxes[0].heatmap) for b in boxes)


def test_maps_are_cropped_to_the_photos_part_of_the_padded_batch():
    from workbench.explain.cam import _CropToImage

    # a 450 x 319 photo at 320 px: resized to 320 x 227, padded to 320 x 256; at stride 32
    # the map is 10 x 8, of which 7 rows cover the photo
    crop = _CropToImage(image_hw=(227, 320), padded_hw=(256, 320))
    assert crop(torch.zeros(1, 5, 8, 10)).shape == (1, 5, 7, 10)
    assert crop(torch.zeros(1, 5, 1, 1)).shape == (1, 5, 1, 1)  # never empty


def test_review_gives_each_stored_box_the_explanation_of_its_own_box():
    from workbench.review.samples import attach_explanations

    stored = [
        {"label": "ivory", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "score": 0.9},
        {"label": "resin", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "score": 0.4},
        {"label": "ivory", "x1": 50, "y1": 50, "x2": 60, "y2": 60, "score": 0.8},
    ]
    explained = [
        {"label": "ivory", "box": [0.4, 0, 10, 10.2], "inside_share": 0.2, "flagged": True},
        {"label": "resin", "box": [1, 0, 10, 10], "inside_share": 0.7, "flagged": False},
    ]
    got = attach_explanations(stored, explained)
    assert [(d.get("cam_inside_share"), d.get("cam_flagged")) for d in got] == [
        (0.2, True),
        (0.7, False),
        (None, None),  # no explained box there: left as it was
    ]
    assert "cam_flagged" not in stored[0]  # the catalog's dicts are not changed


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list_backbones())
def test_every_backbone_in_the_registry_gives_maps_on_its_last_layer(workspace_factory, backbone):
    ws = workspace_factory(classes=CLASSES)
    _register(ws, backbone)
    explainer = _explainer(ws, "gradcam")
    assert explainer.layer == default_cam_layer(backbone)
    boxes = explainer.explain(Image.new("RGB", (80, 60), (120, 40, 40)))
    assert boxes and all(b.heatmap.shape == (60, 80) for b in boxes)


def test_cli_methods_are_the_explainers():
    from workbench.cli import explain as cli_explain
    from workbench.explain.cam import DEFAULT_METHOD, METHODS

    assert list(cli_explain.METHODS) == list(METHODS) and DEFAULT_METHOD in METHODS


# ---- the command, as a user runs it ------------------------------------------------------
def _wb(ws, *args):
    return CliRunner().invoke(cli, ["-w", str(ws.root), "explain", *args])


def test_explain_writes_a_picture_per_box_a_sheet_and_the_index_review_reads(case):
    ws, ids, version, folder = case
    run = _wb(ws, "--images", str(folder), "--json")
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert (out["version"], out["method"], out["layer"]) == (
        version,
        "eigencam",
        "backbone.body.16",
    )
    n = len(out["detections"])
    assert len(out["images"]) == 4 and {d["image"] for d in out["detections"]} == {
        im["image"] for im in out["images"]
    }  # boxes on every image
    for d in out["detections"]:
        assert set(d) >= {"image", "label", "score", "box", "inside_share", "flagged", "png"}
        assert 0.0 <= d["inside_share"] <= 1.0 and d["flagged"] == (d["inside_share"] < 0.5)
        assert Image.open(d["png"]).format == "PNG"
    # TP/FP where the catalog has ground truth; none for the unannotated image
    outcomes = {
        d["image_id"]: {x["outcome"] for x in out["detections"] if x["image_id"] == d["image_id"]}
        for d in out["detections"]
    }
    assert outcomes[ids[3]] == {None}
    assert all(outcomes[i] <= {"tp", "fp"} for i in ids[:3])
    sheet = (ws.reports_dir / "explain" / version / "eigencam" / "index.html").read_text()
    assert sheet.count("<div class='card") == n and "share flagged" in sheet
    assert out["per_class"] == flagged_by_class(out["detections"])

    from workbench.explain.store import read_explanations

    got = read_explanations(ws.reports_dir, version)
    assert sorted(got) == sorted(ids)
    one = got[ids[0]]
    assert Image.open(one.heatmap).size == (96, 96) and one.method == "eigencam"
    assert len(one.detections) == sum(1 for d in out["detections"] if d["image_id"] == ids[0])

    # a second run on one of the photos replaces its entry; the others stay for review
    again = _wb(ws, "--images", one.detections[0]["path"], "--json")
    assert again.exit_code == 0, again.output
    index = json.loads(
        (ws.reports_dir / "explain" / version / "eigencam" / "explain.json").read_text()
    )
    assert sorted(im["image_id"] for im in index["images"]) == sorted(ids)
    assert len(index["detections"]) == n
    assert len(json.loads(again.stdout)["images"]) == 1


def test_explain_prints_the_flag_share_per_class_and_where_the_sheet_is(case):
    ws, _, version, folder = case
    run = _wb(ws, "--images", str(folder), "--method", "gradcam", "--min-inside-share", "0.9")
    assert run.exit_code == 0, run.output
    assert re.search(
        f"model {version} \\(mobilenet_v3\\), gradcam on backbone.body.16: \\d+ boxes on 4 "
        "images explained in [\\d.]+ s\n",
        run.output,
    )
    assert "flagged detections per class" in run.output
    assert (
        f"contact sheet: {ws.reports_dir / 'explain' / version / 'gradcam' / 'index.html'}"
        in run.output
    )


def test_an_unknown_method_is_refused_with_the_choices(case):
    ws, _, _, folder = case
    run = _wb(ws, "--images", str(folder), "--method", "saliency")
    assert run.exit_code == 2
    assert (
        "Invalid value for '--method': 'saliency' is not one of 'eigencam', 'gradcam'" in run.output
    )


def test_a_layer_that_does_not_exist_lists_the_valid_ones(case):
    ws, _, _, folder = case
    run = _wb(ws, "--images", str(folder), "--layer", "backbone.body.99")
    assert run.exit_code == 1
    assert (
        "no layer 'backbone.body.99' to take maps from in this mobilenet_v3 model; layers: backbone.body.0, backbone.body.1,"
        in run.output
    )
    assert "the default is its last layer, backbone.body.16" in run.output
    assert not (case[0].reports_dir / "explain").exists()


def test_a_model_that_finds_nothing_has_nothing_to_explain_and_exits_0(workspace_factory, tmp_path):
    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        add_synthetic_images(catalog, tmp_path / "img", CLASSES, 2)
    version = _register(ws, finds=False)
    run = _wb(ws, "--images", str(tmp_path / "img"))
    assert run.exit_code == 0, run.output
    assert (
        f"model {version} finds no box with score >= 0.3 on the 2 images read: nothing to explain"
        in run.output
    )
    assert not (ws.reports_dir / "explain").exists()


def test_unreadable_images_are_skipped_with_a_line_each(case):
    ws, _, _, folder = case
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    run = _wb(ws, "--images", str(folder))
    assert run.exit_code == 0, run.output
    assert f"skipped {folder / 'broken.jpg'}: " in run.stderr
    assert f"skipped {folder / 'empty.png'}: empty file (0 bytes)" in run.stderr
    assert re.search(
        r"\d+ boxes on 4 images explained in [\d.]+ s; 2 unreadable, skipped", run.stdout
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # photos untouched


def test_which_images_must_be_said_and_a_missing_path_is_named(case):
    ws, _, _, folder = case
    run = _wb(ws)
    assert run.exit_code == 2 and "say which images: --images PATH or --view NAME" in run.output
    run = _wb(ws, "--images", str(folder), "--view", "worst-images")
    assert run.exit_code == 2
    run = _wb(ws, "--images", str(folder / "nope"))
    assert (
        run.exit_code == 1 and f"--images {folder / 'nope'}: no such file or folder" in run.output
    )


def test_without_the_grad_cam_package_it_says_how_to_install_it(case, monkeypatch):
    ws, _, _, folder = case
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # import fails
    run = _wb(ws, "--images", str(folder))
    assert run.exit_code == 1
    assert "install with `pip install --no-deps grad-cam==1.5.5 ttach`" in run.output
