"""kill -9 during `wb retrain`: before the first checkpoint, in the middle of an epoch
after one, just after the last checkpoint, while the weights are copied into the
registry and after the version folder is whole but not yet in the catalog. `--resume` continues; the registry ends as after a
clean run: the same versions in folders and catalog, the same data, nothing left over."""

import json
import re
from pathlib import Path

import pytest
from faultkit import assert_registry_consistent, registry_state, wb, wb_killed, wb_ok

from workbench.detection.synthetic import add_synthetic_images
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

CLASSES = ["red", "blue"]
# tiny: random weights, 64 px, 2 epochs of a few steps (about 10 s a run here)
RETRAIN = (
    "retrain",
    "--backbone",
    "mobilenet_v3",
    "--weights",
    "none",
    "--image-size",
    "64",
    "--max-epochs",
    "2",
    "--batch-size",
    "4",
    "--promote",
    "always",
    "--skip-pull",
    "--skip-evaluate",
    "--skip-predict",
    "--skip-refresh",
)


def _workspace(root: Path) -> Path:
    ws = Workspace.create(root / "ws", Taxonomy.flat(CLASSES))
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, root / "images", CLASSES, 6, size=64, seed=1)
    return ws.root


def _trained(ws: Path) -> dict:
    """What the registered version says of its training and data."""
    [version] = registry_state(ws)["listed"]
    folder = ws / "models" / version
    return {
        "version": version,
        "epochs": json.loads((folder / "metrics.json").read_text())["epochs"],
        "data": json.loads((folder / "data.json").read_text())["image_ids"],
    }


@pytest.fixture(scope="module")
def clean(module_tmp):
    ws = _workspace(module_tmp.mktemp("clean-retrain"))
    out = wb_ok(ws, *RETRAIN).stdout
    [steps] = re.findall(r"training: epoch 0, (\d+) batches", out)
    assert_registry_consistent(ws)
    return _trained(ws), int(steps)


def test_retrain_killed_before_and_after_a_checkpoint_resumes_to_a_clean_result(clean, tmp_path):
    want, steps = clean
    ws = _workspace(tmp_path)

    wb_killed(ws, *RETRAIN, fault="train.step:1")  # no checkpoint yet
    nothing = wb(ws, *RETRAIN, "--resume")
    assert nothing.returncode == 1
    assert "nothing to resume: no interrupted run in" in nothing.stderr + nothing.stdout
    assert "Run `wb retrain` without --resume." in nothing.stderr + nothing.stdout

    wb_killed(ws, *RETRAIN, fault=f"train.step:{steps + 1}")  # epoch 1's first step
    assert registry_state(ws)["listed"] == []
    resumed = wb_ok(ws, *RETRAIN, "--resume").stdout
    assert "(resuming)" in resumed and "epoch 0:" not in resumed and "epoch 1:" in resumed
    assert _trained(ws) == want
    assert_registry_consistent(ws)


def test_retrain_killed_while_registering_leaves_one_whole_version(clean, tmp_path):
    want, _ = clean
    ws = _workspace(tmp_path)

    # the last epoch's checkpoint is written, its history line and the model are not
    wb_killed(ws, *RETRAIN, fault="train.checkpoint:2")
    wb_killed(ws, *RETRAIN, "--resume", fault="register.copied:1")  # half a version folder
    assert registry_state(ws)["incoming"] != [] and registry_state(ws)["listed"] == []
    # the re-run registers again and is killed with the folder whole, not yet listed
    wb_killed(ws, *RETRAIN, "--resume", fault="register.renamed:1")
    assert registry_state(ws)["listed"] == []

    wb_ok(ws, *RETRAIN, "--resume")
    assert _trained(ws) == want
    assert_registry_consistent(ws)
