"""Hot swap over real HTTP: promoting a new version while requests run fails none of
them, and the predictions after the swap carry the new version."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import torch
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_promoting_while_requests_run_fails_none_and_switches_version(workspace_factory, tmp_path):
    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.detection.registry import Registry

    torch.set_num_threads(1)
    ws = workspace_factory(classes=["cat", "dog"])
    root = tmp_path / "files"
    root.mkdir()
    Image.new("RGB", (96, 64), (90, 140, 200)).save(root / "a.png")
    with ws.open_catalog() as catalog:
        first = register_untrained_model(ws, catalog, ["cat", "dog"], seed=0, promote=True)
        second = register_untrained_model(ws, catalog, ["cat", "dog"], seed=1)
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0.2)
    app = create_app(
        holder, ws.open_catalog, BackendSettings(taxonomy=ws.taxonomy, document_root=root)
    )
    body = {"tasks": [{"id": i, "data": {"image": "/data/local-files/?d=a.png"}} for i in range(2)]}
    answers: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def hammer(url):
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                res = http.post("/predict", json=body)
                version = res.json().get("model_version") if res.status_code == 200 else None
                answers.append((time.monotonic(), res.status_code, version))

    with running(app) as url:
        workers = [threading.Thread(target=hammer, args=(url,)) for _ in range(3)]
        for w in workers:
            w.start()
        time.sleep(1.5)
        with ws.open_catalog() as catalog:
            Registry.of(ws, catalog).promote(second)
        promoted_at = time.monotonic()
        while not any(v == second and t > promoted_at for t, _, v in answers):
            assert time.monotonic() - promoted_at < 60, "the new version never served"
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join(60)

    assert answers and all(status == 200 for _, status, _ in answers), sorted(
        {s for _, s, _ in answers}
    )
    versions = [v for _, _, v in answers]
    assert versions[0] == first
    # once the new version answered, no later answer is the old one
    switch = versions.index(second)
    finished = [v for t, _, v in sorted(answers)]
    assert finished[finished.index(second) :].count(first) <= 3  # only requests already in flight
    assert versions.count(second) >= 2 and switch > 0
