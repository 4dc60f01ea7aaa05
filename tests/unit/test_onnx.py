"""`wb models export` and `wb serve --runtime onnx`: the export is kept only when ONNX
Runtime gives torch's boxes, a changed or missing file is refused with what to run,
and `/predict` answers from ONNX Runtime.

The model is tiny (mobilenet_v3 at 64 px) and trained a few steps on synthetic images,
so its scores are not all tied (an untrained detector scores every box alike, and then
each runtime's NMS and top-100 cut keep different, equally good boxes).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from workbench.backend.tiny_models import register_briefly_trained_model
from workbench.cli import cli
from workbench.detection.onnx import (
    ONNX_FILE,
    RECORD_FILE,
    TOLERANCE,
    NoOnnxModel,
    OnnxPredictor,
    compare_detections,
)
from workbench.detection.predict import Detection, Predictor
from workbench.detection.registry import Registry
from workbench.detection.synthetic import draw_image
from workbench.detection.train import TrainConfig, build_model

pytestmark = pytest.mark.unit
torch.set_num_threads(1)
CLASSES = ["red", "blue"]
CONFIG = TrainConfig(
    backbone="mobilenet_v3", image_size=64, weights="none"
)  # the tiny trained model


def _register(ws, promote: bool = True) -> str:
    """A 64 px mobilenet_v3 trained 3 steps (about 3 s)."""
    with ws.open_catalog() as catalog:
        return register_briefly_trained_model(ws, catalog, CLASSES, promote=promote)


def wb(ws, *args):
    return CliRunner().invoke(cli, ["-w", str(ws.root), *args])


def photos() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [draw_image(rng, CLASSES, s, 2)[0].resize((s, s * 3 // 4)) for s in (64, 90, 120)]


@pytest.fixture(scope="module")
def exported(module_tmp):
    """A workspace whose promoted v001 was exported by `wb models export`."""
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    ws = Workspace.create(module_tmp.mktemp("onnx") / "ws", Taxonomy.flat(CLASSES))
    version = _register(ws)
    result = wb(ws, "models", "export", version)
    return ws, version, result


# ---- the rule --------------------------------------------------------------------------
def _det(label, box, score, probs=None):
    return Detection(label, *box, score=score, probs=probs or {"background": 1 - score})


def test_the_comparison_names_each_way_two_runtimes_can_differ():
    torch_dets = [_det("red", (0, 0, 10, 10), 0.9), _det("blue", (20, 0, 30, 10), 0.5)]
    assert compare_detections("a", torch_dets, list(torch_dets)).problems == []
    # within the tolerance: a box moved by a hundredth of a pixel, a score by 1e-4
    close = [_det("red", (0.01, 0, 10, 10), 0.9001), _det("blue", (20, 0, 30, 10), 0.5)]
    assert compare_detections("a", torch_dets, close).problems == []

    assert compare_detections("a", torch_dets, torch_dets[:1]).problems == [
        "2 boxes from torch, 1 from ONNX Runtime",
        "no blue box near (20, 0, 30, 10) (score 0.500)",
    ]
    moved = [_det("red", (1, 0, 10, 10), 0.9), torch_dets[1]]
    assert compare_detections("a", torch_dets, moved).problems == [
        "red box (0, 0, 10, 10): IoU 0.900 with ONNX's"
    ]
    rescored = [_det("red", (0, 0, 10, 10), 0.898), torch_dets[1]]
    assert (
        "score 0.9000 in torch, 0.8980 in ONNX"
        in compare_detections("a", torch_dets, rescored).problems[0]
    )
    relabelled = [torch_dets[0], _det("red", (20, 0, 30, 10), 0.5)]
    assert compare_detections("a", torch_dets, relabelled).problems == [
        "no blue box near (20, 0, 30, 10) (score 0.500)"
    ]
    assert TOLERANCE.min_iou == 0.99 and TOLERANCE.max_score_diff == 1e-3


# ---- export ----------------------------------------------------------------------------
def test_export_keeps_a_graph_that_gives_torchs_boxes(exported):
    ws, version, result = exported
    assert result.exit_code == 0, result.output
    folder = ws.models_dir / version
    assert f"exported {version} to {folder / ONNX_FILE}" in result.output
    assert "checked on 2 images (0 of the val split, 2 synthetic)" in result.output
    assert (folder / RECORD_FILE).is_file()
    assert not list(folder.glob(".*.tmp"))

    images = photos()
    by_torch = Predictor(folder, device="cpu").predict(images)
    by_onnx = OnnxPredictor(folder).predict(images)
    assert sum(len(d) for d in by_torch) >= 10  # boxes to compare, not an empty match
    for i, (t, o) in enumerate(zip(by_torch, by_onnx)):
        assert compare_detections(str(i), t, o).problems == []
        assert [d.label for d in sorted(t, key=lambda d: -d.score)] == [
            d.label for d in sorted(o, key=lambda d: -d.score)
        ]


def test_a_graph_that_differs_from_torch_is_not_kept(workspace_factory, monkeypatch):
    import workbench.detection.onnx as onnx_mod

    ws = workspace_factory(classes=CLASSES)
    version = _register(ws)
    real_trace = onnx_mod.trace_to_onnx

    def trace_other_weights(model, path, opset, image):
        other = build_model(CONFIG, CLASSES, load_weights=False).eval()
        other.load_state_dict(model.state_dict())
        other.roi_heads.box_predictor.cls_score.bias.data[1] += 0.5  # red scores higher
        real_trace(other, path, opset, image)

    monkeypatch.setattr(onnx_mod, "trace_to_onnx", trace_other_weights)
    result = wb(ws, "models", "export", version)

    assert result.exit_code == 1
    assert f"the ONNX graph of {version} does not give torch's detections" in result.output
    assert "in torch" in result.output and f"{ONNX_FILE} was not kept" in result.output
    folder = ws.models_dir / version
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "data.json",
        "metrics.json",
        "weights.pt",
    ]


def test_a_model_onnx_changed_after_the_export_is_refused(exported, tmp_path):
    import shutil

    ws, version, _ = exported
    copy = tmp_path / version
    shutil.copytree(ws.models_dir / version, copy)
    with open(copy / ONNX_FILE, "r+b") as fh:  # one byte of the weights changed
        fh.seek(-100, 2)
        byte = fh.read(1)
        fh.seek(-100, 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(NoOnnxModel, match="not the file `wb models export` checked"):
        OnnxPredictor(copy)
    (copy / RECORD_FILE).unlink()
    with pytest.raises(NoOnnxModel, match=f"no verification record.*wb models export {version}"):
        OnnxPredictor(copy)


# ---- the clear errors ------------------------------------------------------------------
def test_serving_onnx_before_the_export_says_to_export(workspace_factory):
    ws = workspace_factory(classes=CLASSES)
    version = _register(ws)
    result = wb(ws, "serve", "--runtime", "onnx")
    assert result.exit_code == 1
    assert f"model {version} has no {ONNX_FILE}: run `wb models export {version}` first" in (
        result.output
    )


def test_without_onnxruntime_export_and_serve_say_what_to_install(workspace_factory, monkeypatch):
    ws = workspace_factory(classes=CLASSES)
    _register(ws)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if absent
    for args in (("serve", "--runtime", "onnx"), ("models", "export")):
        result = wb(ws, *args)
        assert result.exit_code == 1, args
        assert "needs the onnxruntime package: pip install 'workbench[onnx]'" in result.output


# ---- serving ---------------------------------------------------------------------------
def test_predict_and_detect_answer_from_onnx_runtime_and_a_version_without_export_waits(
    exported, tmp_path, caplog
):
    import io
    import logging

    from workbench.backend import BackendSettings, ModelHolder, create_app
    from workbench.field import FieldSettings, field_router
    from workbench.field.tokens import add_device
    from workbench.labelstudio.config import detection_config

    ws, version, _ = exported
    (tmp_path / "imgs").mkdir()
    photo = photos()[1]
    photo.save(tmp_path / "imgs" / "p.png")
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0, runtime="onnx")
    settings = BackendSettings(taxonomy=ws.taxonomy, document_root=tmp_path, min_score=0.0)
    app = create_app(holder, ws.open_catalog, settings)
    field = FieldSettings(photos_dir=ws.field_photos_dir, taxonomy=ws.taxonomy, min_score=0.0)
    app.include_router(field_router(holder, ws.open_catalog, field))
    client = TestClient(app)
    with ws.open_catalog() as catalog:
        token = add_device(catalog, "phone")
    body = {
        "tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=imgs/p.png"}}],
        "label_config": detection_config(CLASSES),
    }
    png = io.BytesIO()
    photo.save(png, "PNG")

    res = client.post("/predict", json=body)
    detect = client.post(
        "/v1/detect",
        files={"image": ("p.png", png.getvalue(), "image/png")},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert res.status_code == 200, res.text
    assert detect.status_code == 200, detect.text
    assert isinstance(holder.current(), OnnxPredictor)
    torch_dets = Predictor(ws.models_dir / version, device="cpu").predict([photo])[0]
    assert len(res.json()["results"][0]["result"]) == len(torch_dets) > 0
    found = detect.json()["detections"]
    assert len(found) == len(torch_dets)
    best = max(torch_dets, key=lambda d: d.score)
    assert found[0]["label"] == best.label
    assert found[0]["box"] == pytest.approx([best.x1, best.y1, best.x2, best.y2], abs=0.05)

    # a newly promoted version without model.onnx: the old one keeps serving, said once
    newer = _register(ws)
    with caplog.at_level(logging.DEBUG, logger="workbench.backend.holder"):
        assert holder.refresh() is False and holder.refresh() is False
    assert holder.version == version
    assert f"run `wb models export {newer}` first" in holder.last_error
    said = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 1 and f"still serving {version}" in said[0].getMessage()
    assert wb(ws, "models", "export", newer).exit_code == 0
    assert holder.refresh() is True and holder.version == newer
    with ws.open_catalog() as catalog:  # leave the module's workspace as it was
        Registry.of(ws, catalog).promote(version)
