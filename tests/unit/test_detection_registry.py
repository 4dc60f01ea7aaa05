"""Registry folders written whole; promotion; the Predictor and stored predictions."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.detection.predict import Detection, Predictor, predict_catalog
from workbench.detection.registry import Registry
from workbench.detection.synthetic import add_synthetic_images
from workbench.detection.train import TrainConfig, build_model
from workbench.errors import WorkbenchError

torch.set_num_threads(1)
CLASSES = ["red", "blue"]


@pytest.fixture
def setup(workspace_factory, tmp_path):
    ws = workspace_factory(classes=CLASSES)
    cat = ws.open_catalog()
    config = TrainConfig(backbone="mobilenet_v3", image_size=64)
    torch.manual_seed(0)
    model = build_model(config, CLASSES)
    model.roi_heads.box_predictor.cls_score.bias.data[:] = torch.tensor([-3.0, 1.0, 1.0])
    torch.save(model.state_dict(), tmp_path / "best.pt")
    return ws, cat, Registry.of(ws, cat), config, tmp_path / "best.pt"


def _register(reg, config, weights, **kw):
    return reg.register(
        weights,
        config.to_dict(),
        CLASSES,
        "species",
        {"val_mAP50": 0.1},
        {"image_ids": {"train": [1]}, "annotations_sha256": "x"},
        **kw,
    )


def test_versions_count_up_and_folders_are_whole(setup):
    ws, cat, reg, config, weights = setup
    a = _register(reg, config, weights)
    b = _register(reg, config, weights, parent="v001")
    assert (a.version, b.version, b.parent) == ("v001", "v002", "v001")
    assert sorted(p.name for p in b.path.iterdir()) == [
        "config.json",
        "data.json",
        "metrics.json",
        "weights.pt",
    ]
    assert json.loads((b.path / "config.json").read_text())["train"]["backbone"] == "mobilenet_v3"
    assert not [p for p in ws.models_dir.iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_no_version_behind(setup, tmp_path):
    ws, cat, reg, config, _ = setup
    with pytest.raises(FileNotFoundError):
        _register(reg, config, tmp_path / "missing.pt")
    assert list(ws.models_dir.iterdir()) == [] and cat.models() == []


def test_promote_one_at_a_time_and_unknown_versions_are_named(setup):
    _, _, reg, config, weights = setup
    _register(reg, config, weights)
    _register(reg, config, weights)
    assert reg.promoted() is None
    reg.promote("v001")
    reg.promote("v002")
    assert reg.promoted().version == "v002"
    assert [m.promoted for m in reg.list()] == [False, True]
    with pytest.raises(WorkbenchError, match="no model version 'v9'; known versions: v001, v002"):
        reg.promote("v9")


def test_predictor_gives_full_probabilities_features_and_stores_predictions(setup, tmp_path):
    ws, cat, reg, config, weights = setup
    mv = _register(reg, config, weights)
    reg.promote(mv.version)
    p = Predictor(mv.path)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    dets = p.predict([img, img])
    assert len(dets) == 2 and len(dets[0]) > 0
    d = dets[0][0]
    assert set(d.probs) == {"background", "red", "blue"}
    assert abs(sum(d.probs.values()) - 1) < 1e-5 and d.probs[d.label] == pytest.approx(d.score)
    assert 0 <= d.x1 < d.x2 <= 120 and 0 <= d.y1 < d.y2 <= 90  # the input's pixel frame
    assert set(d.to_dict()) == {"label", "x1", "y1", "x2", "y2", "score", "probs"}
    assert Detection.from_dict(d.to_dict()) == d
    feats = p.features([img, img, img])
    assert feats.shape == (3, 256) and feats.dtype == np.float32

    ids = add_synthetic_images(cat, tmp_path / "img", CLASSES, 0, size=48, unannotated=3)
    seen = []
    run = predict_catalog(ws, cat, None, ids, on_progress=lambda d, t: seen.append((d, t)))
    assert run.version == "v001" and run.images == 3 and seen[-1] == (3, 3)
    stored = cat.predictions("v001")
    assert sorted(stored) == ids and stored[ids[0]][0].keys() == d.to_dict().keys()


def test_a_killed_registration_leaves_nothing_after_the_next_one(setup):
    import os
    import subprocess
    import sys

    ws, cat, reg, config, weights = setup
    root = ws.models_dir
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = root / f".incoming-{int(gone.stdout)}-abc"  # its writer was killed
    live = root / f".incoming-{os.getpid()}-def"  # a writer still at work
    old, fresh = root / ".incoming-old123", root / ".incoming-new456"  # names without a PID
    for folder in (dead, live, old, fresh):
        folder.mkdir()
        (folder / "weights.pt").write_bytes(b"partial")
    os.utime(old, (0, 0))
    mv = _register(reg, config, weights)
    assert mv.version == "v001" and (root / "v001" / "weights.pt").is_file()
    left = sorted(p.name for p in root.glob(".incoming-*"))
    assert left == sorted([live.name, fresh.name])


def test_a_version_folder_killed_before_the_catalog_listed_it_is_removed_by_the_next_one(setup):
    """Killed between the rename into place and the catalog row (tests/fault found it):
    the next registration takes that name again instead of leaving a folder nobody lists."""
    import os
    import subprocess
    import sys

    from workbench.detection.registry import REGISTERING

    ws, cat, reg, config, weights = setup
    root = ws.models_dir
    first = _register(reg, config, weights)
    assert not (first.path / REGISTERING).exists()  # gone once the catalog lists it
    (first.path / REGISTERING).write_text("1")  # killed right after listing: harmless
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = root / "v002"  # whole, renamed into place by a writer that was killed
    orphan.mkdir()
    (orphan / "weights.pt").write_bytes(b"whole")
    (orphan / REGISTERING).write_text(gone.stdout)
    theirs = root / "v007"  # a folder wb did not write: no marker, left alone
    theirs.mkdir()
    busy = root / "v009"  # a writer still at work (this process)
    busy.mkdir()
    (busy / REGISTERING).write_text(str(os.getpid()))

    assert reg.remove_leftovers() == [orphan]
    assert not orphan.exists() and theirs.is_dir() and busy.is_dir()
    assert not (first.path / REGISTERING).exists()
    assert sorted(m.version for m in cat.models()) == ["v001"]
