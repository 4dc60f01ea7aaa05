"""`wb prioritize` with a real registered detector (untrained, tiny images): predictions
with full class probabilities are made and stored, pooled features are cached, and the
page is written. Quality is not the point here; the plumbing is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from prioritize_cases import CLASSES, add_image, draw  # noqa: E402

from workbench.active.prioritize import FEATURES_FILE  # noqa: E402
from workbench.cli import cli  # noqa: E402
from workbench.detection.registry import Registry  # noqa: E402
from workbench.detection.train import TrainConfig, build_model  # noqa: E402

pytestmark = pytest.mark.integration


def test_prioritize_runs_a_registered_model_end_to_end(workspace_factory, tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ws = workspace_factory()
    config = TrainConfig(backbone="mobilenet_v3", image_size=64, weights="none")
    weights = tmp_path / "weights.pt"
    torch.save(build_model(config, CLASSES).state_dict(), weights)
    with ws.open_catalog() as catalog:
        ids = [
            add_image(catalog, draw(tmp_path / f"img{i}.png", 60 + 40 * i, (50 * i, 20)))
            for i in range(4)
        ]
        registry = Registry.of(ws, catalog)
        mv = registry.register(weights, config.to_dict(), CLASSES, "species", {}, {})
        registry.promote(mv.version)
    res = CliRunner().invoke(
        cli,
        [
            "--workspace",
            str(ws.root),
            "prioritize",
            "--strategy",
            "diverse",
            "--batch",
            "2",
            "--show",
            "4",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out) == 2
    assert [e["uncertainty"] for e in out] == sorted((e["uncertainty"] for e in out), reverse=True)
    with ws.open_catalog() as catalog:
        stored = catalog.predictions(mv.version)
        assert set(stored) == set(ids) and any(stored.values())
        for boxes in stored.values():
            for b in boxes:
                assert b["probs"] and sum(b["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert len(catalog.priorities(mv.version)) == 4
    cache = ws.models_dir / mv.version / FEATURES_FILE
    assert cache.is_file()
    assert (ws.reports_dir / "prioritize" / mv.version / "index.html").is_file()
