"""Issue 16 item 4: an export read against the wrong folder is refused (nothing
written) with the missing paths and where they are; rows once recorded as missing
become their image when the file is found; `wb status` counts no unreadable image's
boxes; `--follow-links` follows links out of PATH on purpose and says so."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli
from workbench.errors import WorkbenchError
from workbench.ingest import check_found

pytestmark = pytest.mark.unit


def wb(ws: Path, *args: str):
    return CliRunner().invoke(cli, ["-w", str(ws), *args])


def status(ws: Path) -> dict:
    res = wb(ws, "status", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def rows(ws: Path) -> int:
    with sqlite3.connect(ws / "catalog.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM images").fetchone()[0]


@pytest.fixture
def ws(tmp_path) -> Path:
    ws = tmp_path / "ws"
    assert wb(ws, "init").exit_code == 0
    return ws


def test_d6_the_wrong_images_folder_is_refused_then_the_right_one_counts_300_and_768(
    ws, demo_data, monkeypatch
):
    monkeypatch.chdir(demo_data.parent)
    export, demo = demo_data / "annotations.json", demo_data.name
    wrong = wb(ws, "ingest", str(export), "--format", "coco", "--images", f"{demo}/images")
    assert wrong.exit_code == 1
    last = wrong.output.strip().splitlines()[-1]
    assert last.startswith(
        f"Error: only 0 of the 300 images {export} names exist under --images {demo}/images "
        "(at least 50% must); nothing was cataloged. Missing, e.g.: "
        f"{demo_data}/images/images/elephant_ivory/000001.jpg, "
    )
    assert last.endswith(
        f"Did you mean --images {demo}? (they are there) Or pass --allow-missing to catalog "
        "them anyway (as unreadable)."
    )
    assert rows(ws) == 0

    right = wb(ws, "ingest", str(export), "--format", "coco", "--images", demo)
    assert right.exit_code == 0, right.output
    counts = status(ws)
    assert counts["images"]["total"] == 300 and counts["boxes"]["total"] == 768


def test_rows_ingested_as_missing_become_their_images_when_the_right_folder_comes(ws, demo_data):
    export = str(demo_data / "annotations.json")
    phantom = wb(
        ws, "ingest", export, "--format", "coco", "--images", str(demo_data / "images"),
        "--allow-missing",
    )  # fmt: skip
    assert phantom.exit_code == 0, phantom.output
    assert "300 unreadable" in phantom.output
    before = status(ws)  # unreadable images' boxes and annotations count for nothing
    assert before["images"]["by_status"] == {"unreadable": 300}
    assert before["images"]["annotated"] == 0 and before["boxes"]["total"] == 0

    right = wb(ws, "ingest", export, "--format", "coco", "--images", str(demo_data))
    assert right.exit_code == 0, right.output
    assert "found 300 image(s) recorded as missing by an earlier ingest" in right.output
    after = status(ws)
    assert after["images"]["total"] == 300 and after["images"]["by_status"] == {"active": 300}
    assert after["images"]["annotated"] == 300 and after["boxes"]["total"] == 768
    assert rows(ws) == 300
    with sqlite3.connect(ws / "catalog.sqlite") as db:  # no box twice
        assert db.execute("SELECT COUNT(*) FROM boxes").fetchone()[0] == 768
    again = wb(ws, "ingest", export, "--format", "coco", "--images", str(demo_data))
    assert "300 unchanged" in again.output and status(ws) == after


def test_refusal_rule_half_found_passes_and_no_hint_when_nowhere(tmp_path):
    from workbench.catalog.records import ImportedImage

    (tmp_path / "a.jpg").write_bytes(b"x")
    half = [ImportedImage(str(tmp_path / n)) for n in ("a.jpg", "gone.jpg")]
    check_found(half, tmp_path / "export.json", None)  # 1 of 2: allowed
    with pytest.raises(WorkbenchError) as err:
        check_found(half + [ImportedImage(str(tmp_path / "b.jpg"))], tmp_path / "x.json", None)
    assert "only 1 of the 3 images" in str(err.value)
    assert "Pass --images with the folder the export's file names are relative to" in str(err.value)


def test_a_missing_row_is_taken_only_by_the_file_the_export_named_for_it(
    workspace_factory, tmp_path
):
    """Two exported files with the same name in different folders: each finds its own."""
    ws = workspace_factory(classes=["red"])
    photos = tmp_path / "photos"
    for sub, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (photos / sub).mkdir(parents=True)
        Image.new("RGB", (40, 30), colour).save(photos / sub / "1.jpg")
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": "a/1.jpg", "width": 40, "height": 30},
                    {"id": 2, "file_name": "b/1.jpg", "width": 40, "height": 30},
                ],
                "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 10, 10]}],
                "categories": [{"id": 1, "name": "red"}],
            }
        )
    )
    base = ["-w", str(ws.root), "ingest", str(export), "--format", "coco", "--images"]
    runner = CliRunner()
    runner.invoke(cli, base + [str(tmp_path), "--allow-missing"])
    res = runner.invoke(cli, base + [str(photos)])
    assert res.exit_code == 0, res.output
    with ws.open_catalog() as cat:
        images = {Path(i.path).relative_to(photos).as_posix(): i for i in cat.images()}
        assert set(images) == {"a/1.jpg", "b/1.jpg"}
        assert all(i.status == "active" for i in images.values())
        assert len(cat.boxes_for(images["b/1.jpg"].id)) == 1
        assert cat.boxes_for(images["a/1.jpg"].id) == []


def test_follow_links_ingests_links_out_of_path_and_says_so(tmp_path, ws):
    photos = tmp_path / "photos" / "tiger_claw"
    photos.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(elsewhere / "e.jpg")
    Image.new("RGB", (40, 30), (200, 9, 9)).save(photos / "own.jpg")
    os.symlink(elsewhere / "e.jpg", photos / "out.jpg")

    default = wb(ws, "ingest", str(tmp_path / "photos"))
    assert default.exit_code == 0 and "ingested 1 files" in default.output
    assert "or re-run with --follow-links" in default.output

    followed = wb(ws, "ingest", str(tmp_path / "photos"), "--follow-links")
    assert followed.exit_code == 0, followed.output
    assert "1 new" in followed.output
    assert (
        f"followed 1 symbolic link(s) that leave {tmp_path / 'photos'} (--follow-links; "
        f"e.g. {photos / 'out.jpg'} -> {elsewhere / 'e.jpg'})"
    ) in followed.output
    with sqlite3.connect(ws / "catalog.sqlite") as db:
        got = dict(db.execute("SELECT path, label FROM images").fetchall())
    assert got[str(photos / "out.jpg")] == "tiger_claw"
    assert (elsewhere / "e.jpg").read_bytes()[:2] == b"\xff\xd8"  # the file is untouched


def test_follow_links_stops_at_a_cycle_of_folder_links(tmp_path, ws):
    root = tmp_path / "photos" / "tiger_claw"
    root.mkdir(parents=True)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(a / "x.jpg")
    os.symlink(b, a / "to_b")
    os.symlink(a, b / "to_a")
    os.symlink(a, root / "a")
    res = wb(ws, "ingest", str(tmp_path / "photos"), "--follow-links")
    assert res.exit_code == 0, res.output
    assert "ingested 1 files" in res.output
