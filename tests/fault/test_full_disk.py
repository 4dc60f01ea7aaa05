"""A real full file system (issue 16, D3): a workspace on a 30 MB tmpfs, filled up.
`wb ingest`, `wb dedup` and `wb retrain` each exit 1 with the one line that names the
folder and says what to do, the catalog passes SQLite's integrity check, and the same
commands complete once there is room again. Needs root (to mount); skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli

pytestmark = [pytest.mark.fault, pytest.mark.slow]
torch.set_num_threads(1)
CLASSES = ["red", "blue"]
ADVICE = "Free space on that disk (or use a workspace on a larger one with -w)"
RETRAIN = [
    "retrain",
    "--backbone",
    "mobilenet_v3",
    "--weights",
    "none",
    "--image-size",
    "64",
    "--batch-size",
    "4",
    "--max-epochs",
    "1",
    "--max-minutes",
    "0.02",  # a step or two
    "--skip-pull",
    "--skip-predict",
    "--skip-refresh",
    "--promote",
    "always",
]


@pytest.fixture
def small_disk(tmp_path):
    """A 30 MB tmpfs at ``tmp_path/small``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; this test runs as another user")
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def coco_export(folder: Path, start: int, n: int) -> Path:
    """``n`` small photos (one box each) and the COCO file naming them."""
    images, anns = [], []
    for k in range(start, start + n):
        name = f"{CLASSES[k % 2]}/{k:03d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(k).integers(0, 255, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(noise).resize((64, 48), Image.BICUBIC)  # unlike any other
        img.paste((220, 40, 40) if k % 2 == 0 else (40, 40, 220), (8 + k % 9, 8, 40, 36))
        img.save(folder / name, quality=90)
        images.append({"id": k + 1, "file_name": name, "width": 64, "height": 48})
        anns.append({"id": k + 1, "image_id": k + 1, "category_id": k % 2 + 1,
                     "bbox": [8 + k % 9, 8, 32 - k % 9, 28]})  # fmt: skip
    out = folder / f"export_{start}.json"
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
    out.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return out


def fill(folder: Path, leave: int = 150 << 10) -> Path:
    """Fill the disk of ``folder`` up to ``leave`` bytes free (as the probe did: with
    none at all even reading the catalog can fail, SQLite's shared memory file)."""
    filler = folder / "filler"
    with open(filler, "ab", buffering=0) as fh:
        try:
            while (room := shutil.disk_usage(folder).free - leave) > 0:
                fh.write(b"\0" * min(room, 1 << 20))
        except OSError:
            pass
    return filler


def integrity(ws: Path) -> str:
    with sqlite3.connect(ws / "catalog.sqlite") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def the_one_line(res, folder: Path) -> str:
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and str(folder) in last and ADVICE in last, last
    return last


def test_a_full_disk_stops_ingest_dedup_and_retrain_with_one_line_and_they_finish_later(
    small_disk, tmp_path
):
    photos = tmp_path / "photos"  # the user's images stay off the small disk
    first, second = coco_export(photos, 0, 24), coco_export(photos, 24, 24)
    ws = small_disk / "ws"
    runner = CliRunner()

    def wb(*args):
        return runner.invoke(cli, ["-w", str(ws), *args])

    assert wb("init", "--classes", ",".join(CLASSES)).exit_code == 0
    assert wb("ingest", str(first), "--format", "coco").exit_code == 0

    # D3 as found: 30 MB cannot hold mobilenet_v3's checkpoints: refused before training
    refused = wb(*RETRAIN)
    line = the_one_line(refused, ws / "models" / ".training")
    assert "training mobilenet_v3 (checkpoints and the model's weights) needs about" in line
    assert "epoch 0" not in refused.output

    filler = fill(small_disk)
    ingest = wb("ingest", str(second), "--format", "coco")
    assert "is full" in the_one_line(ingest, ws)
    assert integrity(ws) == "ok"
    dedup = wb("dedup", "--no-progress", "--workers", "1")
    the_one_line(dedup, ws)
    assert integrity(ws) == "ok"
    retrain = wb(*RETRAIN)
    the_one_line(retrain, ws / "models" / ".training")
    assert integrity(ws) == "ok"
    assert wb("status", "--json").exit_code == 0  # reading still works on the full disk

    filler.unlink()
    assert integrity(ws) == "ok"
    again = wb("ingest", str(second), "--format", "coco")
    assert again.exit_code == 0, again.output
    status = json.loads(wb("status", "--json").output)
    assert status["images"]["total"] == 48 and status["boxes"]["total"] == 48
    assert wb("dedup", "--no-progress", "--workers", "1").exit_code == 0

    # the checkpoints of this detector need more than 30 MB: give the disk room
    subprocess.run(["mount", "-o", "remount,size=450m", str(small_disk)], check=True)
    trained = wb(*RETRAIN)
    assert trained.exit_code == 0, trained.output
    assert "registered v001" in trained.output
    assert integrity(ws) == "ok"
    assert not list((ws / "models").glob(".incoming-*"))
    assert not [p for p in ws.rglob(".*.tmp")]  # no temporary file left anywhere
