"""`wb retrain` under torchrun: 2 CPU processes on gloo see disjoint training images,
and only one model is saved and registered."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from workbench.detection.synthetic import add_synthetic_images

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from workbench.workspace import Workspace
    from workbench.detection import dataset as ds_mod
    from workbench.detection.retrain import RetrainOptions, retrain
    from workbench.detection.train import TrainConfig

    seen = []
    original = ds_mod.DetectionDataset.__getitem__
    def recording(self, idx):
        if self.transforms is not None and len(self.transforms.transforms) > 2:  # training
            seen.append(self.samples[idx].image_id)
        return original(self, idx)
    ds_mod.DetectionDataset.__getitem__ = recording

    ws = Workspace.open(sys.argv[1])
    cat = ws.open_catalog()
    config = TrainConfig(backbone="mobilenet_v3", image_size=64, batch_size=2, max_epochs=1,
                         warmup_iters=0, head_epochs=0, hflip=1.0, scale_jitter=None,
                         color_jitter=False)
    report = retrain(ws, cat, RetrainOptions(train=config, skip={"evaluate", "predict"}))
    rank = os.environ["RANK"]
    with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as fh:
        json.dump({"seen": seen, "versions": report.versions,
                   "world": os.environ["WORLD_SIZE"]}, fh)
""")


def test_two_gloo_processes_train_on_disjoint_data_and_save_one_model(workspace_factory, tmp_path):
    ws = workspace_factory(classes=["red", "blue"])
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "img", ["red", "blue"], 16, size=64)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(ws.root),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == "2"
    assert r0["seen"] and r1["seen"] and not set(r0["seen"]) & set(r1["seen"])
    data = json.loads((ws.models_dir / "v001" / "data.json").read_text())["image_ids"]
    seen = set(r0["seen"]) | set(r1["seen"])
    assert seen <= set(data["train"]) and len(seen) >= len(data["train"]) - 1
    assert r0["versions"] == ["v001"] and r1["versions"] == []
    assert sorted(p.name for p in ws.models_dir.iterdir()) == ["v001"]
    with ws.open_catalog() as cat:
        assert [m.version for m in cat.models()] == ["v001"]
