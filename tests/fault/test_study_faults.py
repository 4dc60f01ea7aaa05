"""kill -9 during `wb study run` of a 2-cell classifier grid on the demo data: in the
second cell's training (after its first epoch's checkpoint), and after the first cell's
model is registered but before it is scored. The same command again continues: the
finished cell is not trained again, the interrupted one resumes after its last epoch and
ends with the weights an uninterrupted study gives; the registry holds one version per
cell and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from faultkit import assert_registry_consistent, wb_killed, wb_ok

pytestmark = pytest.mark.integration

# tiny: 48 px, 2 epochs, 120 demo images (about 10 s a cell here)
GRID = """
name = "mini"
task = "classify"

[settings]
positive = "elephant_ivory"
epochs = 2
patience = 5
batch_size = 16
image_size = 48

[axes]
regimen = ["transfer", "scratch"]
"""


def _workspace(root: Path, demo: Path) -> tuple[Path, Path]:
    ws = root / "ws"
    wb_ok(ws, "init")
    wb_ok(ws, "ingest", str(demo / "images"), "--format", "folders")
    grid = root / "mini.toml"
    grid.write_text(GRID)
    return ws, grid


def _state(ws: Path) -> dict:
    return json.loads((ws / "reports" / "studies" / "mini" / "state.json").read_text())


def _weights(ws: Path, version: str) -> dict:
    return torch.load(ws / "models" / version / "weights.pt", weights_only=True)


@pytest.fixture(scope="module")
def clean(module_tmp, small_demo):
    ws, grid = _workspace(module_tmp.mktemp("clean-study"), small_demo)
    wb_ok(ws, "study", "run", str(grid))
    return ws


def test_a_study_killed_in_its_second_cell_resumes_it(tmp_path, small_demo, clean):
    ws, grid = _workspace(tmp_path, small_demo)
    # checkpoints: cell 1 epochs 1, 2; cell 2 epoch 1 -> killed there
    wb_killed(ws, "study", "run", str(grid), fault="classify.checkpoint:3")
    state = _state(ws)
    [(first_key, first)] = state["cells"].items()
    assert first["status"] == "done" and first["versions"][0]["version"] == "v001"
    [run] = (ws / "reports" / "studies" / "mini" / "runs").iterdir()
    assert (run / "checkpoint.pt").is_file()
    assert assert_registry_consistent(ws)["listed"] == ["v001"]

    again = wb_ok(ws, "study", "run", str(grid))
    assert "regimen=transfer: already done" in again.stderr
    assert "regimen=scratch: resuming" in again.stderr
    assert assert_registry_consistent(ws)["listed"] == ["v001", "v002"]
    state = _state(ws)
    assert all(c["status"] == "done" for c in state["cells"].values())
    assert not run.exists()  # the checkpoint goes once its model is registered
    metrics = json.loads((ws / "models" / "v002" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["study_cell"].startswith("mini/")
    # the resumed cell ends as the uninterrupted study's same cell
    a, b = _weights(clean, "v002"), _weights(ws, "v002")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "catalog-test f_score" in again.stdout


def test_a_study_killed_before_scoring_a_registered_cell_does_not_train_it_again(
    tmp_path, small_demo
):
    ws, grid = _workspace(tmp_path, small_demo)
    wb_killed(ws, "study", "run", str(grid), fault="study.trained:1")
    [first] = _state(ws)["cells"].values()
    assert first["status"] == "trained" and first["versions"][0]["scores"] == []
    again = wb_ok(ws, "study", "run", str(grid))
    assert "regimen=transfer: training" not in again.stderr
    assert assert_registry_consistent(ws)["listed"] == ["v001", "v002"]
    rows = json.loads(wb_ok(ws, "study", "show", str(grid), "--json").stdout)["rows"]
    assert [r["version"] for r in rows] == ["v001", "v002"]
    assert all("catalog-test" in r["scores"] for r in rows)
