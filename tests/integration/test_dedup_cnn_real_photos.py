"""`wb dedup --method cnn` on real kangaroo photos: finds 10-20 % crops pHash misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.dedup.embeddings import weights_available
from workbench.dedup.planting import plant_copies

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not weights_available()[0], reason="efficientnet-lite0 weights not installed"
    ),
]

SOURCES = ["00001", "00002", "00004", "00009", "00014", "00045", "00130", "00151"]


def wb(ws_root: Path, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws_root), *args], catch_exceptions=False)


def pairs_in_groups(report: dict) -> set[frozenset[str]]:
    out = set()
    for g in report["groups"]:
        names = sorted(Path(i["path"]).stem for i in g["images"])
        out |= {frozenset((a, b)) for a in names for b in names if a < b}
    return out


def test_cnn_finds_crops_that_phash_misses(kangaroo_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    photos = tmp_path / "photos"
    plant_copies(
        [kangaroo_dir / "images" / f"{s}.jpg" for s in SOURCES],
        photos,
        kinds=["crop15"],
        conflict_every=0,
    )
    (photos / "planted.json").unlink()
    ws = tmp_path / "ws"
    assert wb(ws, "init", "--classes", "kangaroo,wallaby").exit_code == 0
    assert wb(ws, "ingest", str(photos), "--format", "folders").exit_code == 0
    planted = {frozenset((s, f"{s}_crop15")) for s in SOURCES}

    res = wb(ws, "dedup", "--json", "--no-progress", "--workers", "1", "--method", "phash")
    assert res.exit_code == 0, res.output
    by_phash = pairs_in_groups(json.loads(res.output)) & planted

    res = wb(ws, "dedup", "--json", "--no-progress", "--workers", "1", "--method", "phash,cnn")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    by_both = pairs_in_groups(report) & planted
    assert report["summary"]["embedded_now"] == 2 * len(SOURCES)
    assert len(by_phash) < len(planted), "pHash alone should miss some 10-20 % crops"
    assert len(by_both) >= len(planted) - 1 and by_phash <= by_both
    assert set(pairs_in_groups(report)) <= planted  # no two different photos grouped
    assert report["summary"]["pairs"].get("cnn", 0) >= 1
