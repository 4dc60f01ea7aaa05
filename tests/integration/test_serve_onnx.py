"""`wb models export` then `wb serve --runtime onnx` as a real child process on a free
port: `/predict` over HTTP answers with ONNX Runtime's boxes, which are torch's."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
CLASSES = ["red", "blue"]


def test_wb_serve_runtime_onnx_answers_predict_with_torchs_boxes(workspace_factory, tmp_path):
    import numpy as np

    from workbench.backend.tiny_models import register_briefly_trained_model
    from workbench.detection.predict import Predictor
    from workbench.detection.synthetic import draw_image
    from workbench.labelstudio.config import detection_config
    from workbench.services import free_port, spawn

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        version = register_briefly_trained_model(ws, catalog, CLASSES)
    root = tmp_path / "files"
    root.mkdir()
    photo = draw_image(np.random.default_rng(3), CLASSES, 96, 2)[0].resize((120, 90))
    photo.save(root / "a.png")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "WB_LS_URL": "http://127.0.0.1:1",  # no Label Studio: nothing to reach
        "WB_LS_TOKEN": "unused",
        "WB_LS_DOCUMENT_ROOT": str(root),
    }
    wb = [sys.executable, "-m", "workbench", "-w", str(ws.root)]
    export = subprocess.run(
        [*wb, "models", "export"], capture_output=True, text=True, env=env, timeout=240
    )
    assert export.returncode == 0, export.stderr
    assert f"exported {version}" in export.stdout

    port = free_port()
    argv = [*wb, "serve", "--runtime", "onnx", "--port", str(port), "--min-score", "0"]
    log = tmp_path / "serve.log"
    proc = spawn("wb serve", argv, log, env=env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        proc.wait_healthy(healthy, timeout=120, interval=0.5)
        res = httpx.post(
            f"{url}/predict",
            json={
                "tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=a.png"}}],
                "label_config": detection_config(CLASSES),
            },
            timeout=60,
        )
    finally:
        proc.stop()

    assert f"serving {version} on {url} (onnx; Ctrl-C stops)" in log.read_text()
    assert res.status_code == 200, res.text
    regions = res.json()["results"][0]["result"]
    expected = Predictor(ws.models_dir / version, device="cpu").predict(
        [Image.open(root / "a.png")]
    )
    assert len(regions) == len(expected[0]) > 0
    # the highest-scored region is torch's highest-scored box, in percent of the photo
    top = max(regions, key=lambda r: r["score"])
    best = max(expected[0], key=lambda d: d.score)
    assert top["value"]["rectanglelabels"] == [best.label]
    assert top["value"]["x"] == pytest.approx(100 * best.x1 / 120, abs=0.05)
    assert top["score"] == pytest.approx(best.score, abs=1e-3)
