"""kill -9 during `wb study run` of a per-species detection grid on the demo data (tiny:
random weights, 64 px, 2 epochs): in the second species' training, after its first
epoch's checkpoint. The same command again adopts the first species' registered model,
resumes the second after its last finished epoch and trains the third: the registry holds
as many versions as an uninterrupted study's, none twice, and each ends with the weights
the uninterrupted study gives."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from faultkit import assert_registry_consistent, wb_killed, wb_ok

pytestmark = pytest.mark.integration

GRID = """
name = "boxes"
task = "detect"

[settings]
backbone = "mobilenet_v3"
weights = "none"
image_size = 64
epochs = 2
patience = 5
batch_size = 8

[axes]
per_species = [true]
"""


def _workspace(root: Path, demo: Path) -> tuple[Path, Path]:
    ws = root / "ws"
    wb_ok(ws, "init")
    wb_ok(ws, "ingest", str(demo / "annotations.json"), "--format", "coco")
    grid = root / "boxes.toml"
    grid.write_text(GRID)
    return ws, grid


def _study(ws: Path) -> Path:
    return ws / "reports" / "studies" / "boxes"


def _metrics(ws: Path, version: str) -> dict:
    return json.loads((ws / "models" / version / "metrics.json").read_text())


def _weights(ws: Path, version: str) -> dict:
    return torch.load(ws / "models" / version / "weights.pt", weights_only=True)


@pytest.fixture(scope="module")
def clean(module_tmp, small_demo):
    ws, grid = _workspace(module_tmp.mktemp("clean-detect-study"), small_demo)
    wb_ok(ws, "study", "run", str(grid))
    return ws


def test_a_per_species_detection_cell_killed_mid_way_adopts_resumes_and_ends_as_a_clean_run(
    tmp_path, small_demo, clean
):
    want = assert_registry_consistent(clean)["listed"]
    assert len(want) >= 3  # one model per species; the kill lands in the second
    ws, grid = _workspace(tmp_path, small_demo)
    # checkpoints: species 1 epochs 0, 1 (then registered); species 2 epoch 0 -> killed
    wb_killed(ws, "study", "run", str(grid), fault="train.checkpoint:3")
    assert assert_registry_consistent(ws)["listed"] == ["v001"]
    assert _metrics(ws, "v001")["study_cell"].startswith("boxes/")  # tagged as registered
    [cell] = (_study(ws) / "runs").iterdir()
    [run] = [p.parent for p in cell.rglob("checkpoint.pt")]
    first = (ws / "models" / "v001" / "weights.pt").stat().st_mtime_ns
    killed_epoch = torch.load(run / "checkpoint.pt", weights_only=False)["history"][0]

    again = wb_ok(ws, "study", "run", str(grid))
    assert "per_species=yes: resuming" in again.stderr
    # the first species is adopted, not trained again
    assert (ws / "models" / "v001" / "weights.pt").stat().st_mtime_ns == first
    # the second resumed after epoch 0: its epoch 0 is the killed run's, timing included
    with (ws / "models" / "v002" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[0]["seconds"]) == killed_epoch["seconds"]
    assert assert_registry_consistent(ws)["listed"] == want  # no version twice
    assert not run.exists() and not cell.exists()
    [record] = json.loads((_study(ws) / "state.json").read_text())["cells"].values()
    assert record["status"] == "done"
    assert [v["version"] for v in record["versions"]] == want
    for version in want:
        got, ref = _metrics(ws, version), _metrics(clean, version)
        assert got["epochs"] == ref["epochs"] == 2 and got["study_cell"] == ref["study_cell"]
        a, b = _weights(clean, version), _weights(ws, version)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{version} differs from the clean run"

    third = wb_ok(ws, "study", "run", str(grid))
    assert "already done" in third.stderr
    assert assert_registry_consistent(ws)["listed"] == want
