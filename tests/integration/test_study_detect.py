"""A detection study through `wb study run`: one multi-species model vs per-species
models (ASL loss) on synthetic boxes, each cell through `wb retrain`'s training path (real torch, tiny: random weights,
64 px, 1 epoch), scored by mAP@0.5 and mAR@100 on the catalog's test split, nothing
promoted; the second run trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.detection.synthetic import add_synthetic_images
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration

CLASSES = ["red", "blue"]
GRID = """
task = "detect"

[settings]
backbone = "mobilenet_v3"
weights = "none"
image_size = 64
epochs = 1
batch_size = 4
loss = "asl"

[axes]
per_species = [false, true]
"""


def test_a_detection_study_registers_and_scores_every_cell_and_promotes_none(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(CLASSES))
    with ws.open_catalog() as catalog:
        add_synthetic_images(catalog, tmp_path / "images", CLASSES, 24, size=64, seed=1)
    grid = tmp_path / "boxes.toml"
    grid.write_text(GRID)
    run = CliRunner()
    r = run.invoke(cli, ["-w", str(ws.root), "study", "run", str(grid), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output[r.output.index('{\n  "study"') :])["rows"]
    # one multi-species model per plain cell, one per species (red, blue) per per-species one
    assert [(r["per_species"], r["species"]) for r in rows] == [
        (False, None),
        (True, "red"),
        (True, "blue"),
    ]
    assert len({r["version"] for r in rows}) == 3
    for row in rows:
        test = row["scores"]["catalog-test"]
        assert test["n"] > 0 and 0 <= test["mAP50"] <= 1 and 0 <= test["mAR100"] <= 1
    with ws.open_catalog() as catalog:
        assert catalog.promoted_model() is None
        losses = {m.version: m.config["train"]["loss"] for m in catalog.models()}
    assert [losses[r["version"]] for r in rows] == ["asl"] * 3
    assert Path(ws.reports_dir / "studies" / "boxes" / "chart.png").read_bytes()[:4] == b"\x89PNG"
    again = run.invoke(cli, ["-w", str(ws.root), "study", "run", str(grid)])
    assert again.exit_code == 0, again.output
    assert "training" not in again.output and again.output.count("already done") == 2
    with ws.open_catalog() as catalog:
        assert len(catalog.models()) == 3
