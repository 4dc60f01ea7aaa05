"""Unreadable files are counted, listed in full and given a next step (issue 15, item 7).

The folder a new user brings: a truncated JPEG, a zero-byte file and a text file named
.jpg, next to good photos. Ingest counts them apart from the new images, `wb status
--unreadable` lists them all (path, reason; `--json` the same), and every shortened list
says how many more there are and where to see them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

REASONS = {
    "truncated.jpg": "truncated image",
    "empty.jpg": "empty file (0 bytes)",
    "notes.jpg": "not an image (unrecognised format)",
}


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize((160, 120), Image.BICUBIC)


def write_bad(folder: Path, stem: str = "") -> None:
    buf = io.BytesIO()
    photo(99).save(buf, "JPEG", quality=90)
    (folder / f"{stem}truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / f"{stem}empty.jpg").write_bytes(b"")
    (folder / f"{stem}notes.jpg").write_text("shopping list: film, batteries\n")


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "ivory").mkdir(parents=True)
    for i in range(3):
        photo(i).save(root / "ivory" / f"p{i}.jpg", quality=90)
    write_bad(root / "ivory")
    return root


def wb(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], catch_exceptions=False)


def test_ingest_counts_unreadable_files_apart_and_names_the_next_step(workspace_factory, folder):
    ws = workspace_factory(classes=["ivory"])
    before = {p: p.read_bytes() for p in folder.rglob("*.jpg")}
    res = wb(ws, "ingest", str(folder))
    assert res.exit_code == 0, res.output
    assert (
        f"ingested 6 files from {folder}: 3 new, 0 updated, 0 unchanged, 0 moved, "
        "3 unreadable; 0 boxes" in res.output
    )
    for name, reason in REASONS.items():
        assert f"unreadable: {folder / 'ivory' / name}: {reason}" in res.output
    assert "3 file(s) could not be read" in res.output
    assert "List them with `wb status --unreadable`" in res.output
    assert "more (see" not in res.output  # nothing was left out
    assert {p: p.read_bytes() for p in folder.rglob("*.jpg")} == before
    res = wb(ws, "ingest", str(folder), "--json")
    assert json.loads(res.output)["unchanged"] == 6


def test_ingest_strict_still_refuses(workspace_factory, folder):
    ws = workspace_factory(classes=["ivory"])
    res = wb(ws, "ingest", str(folder), "--strict")
    assert res.exit_code == 1 and "3 unreadable file(s) (--strict)" in res.output


def test_a_long_ingest_list_says_how_many_more(workspace_factory, folder, monkeypatch):
    import workbench.cli.workspace as ws_cli

    monkeypatch.setattr(ws_cli, "SHOWN_UNREADABLE", 2)
    ws = workspace_factory(classes=["ivory"])
    res = wb(ws, "ingest", str(folder))
    assert res.exit_code == 0
    assert res.output.count("unreadable: ") == 2
    assert "... and 1 more (see wb status --unreadable)" in res.output


def test_status_lists_every_unreadable_file_with_its_reason(workspace_factory, folder):
    ws = workspace_factory(classes=["ivory"])
    assert wb(ws, "ingest", str(folder)).exit_code == 0
    res = wb(ws, "status")
    assert (
        res.exit_code == 0
        and "3 unreadable file(s): list them with `wb status --unreadable`" in (res.output)
    )
    res = wb(ws, "status", "--unreadable")
    assert res.exit_code == 0
    assert "3 unreadable file(s) (left out of labelling, training and export):" in res.output
    for name, reason in REASONS.items():
        assert f"{folder / 'ivory' / name}: {reason}" in res.output
    res = wb(ws, "status", "--unreadable", "--json")
    listed = json.loads(res.output)["unreadable"]
    assert {Path(u["path"]).name: u["reason"].split(":")[0] for u in listed} == REASONS


def test_status_unreadable_on_a_clean_catalog(workspace_factory, tmp_path):
    ws = workspace_factory(classes=["ivory"])
    res = wb(ws, "status", "--unreadable")
    assert res.exit_code == 0 and "no unreadable files" in res.output
    assert json.loads(wb(ws, "status", "--unreadable", "--json").output) == {"unreadable": []}
    assert "unreadable file(s)" not in wb(ws, "status").output


def test_dedup_lists_five_and_counts_the_rest(workspace_factory, folder):
    write_bad(folder / "ivory", stem="b_")  # 6 unreadable files in all
    ws = workspace_factory(classes=["ivory"])
    assert wb(ws, "ingest", str(folder)).exit_code == 0
    res = wb(ws, "dedup", "--no-progress", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert res.output.count("  unreadable: ") == 5
    assert "... and 1 more unreadable (see wb status --unreadable)" in res.output
    res = wb(ws, "status", "--unreadable", "--json")
    assert len(json.loads(res.output)["unreadable"]) == 6
