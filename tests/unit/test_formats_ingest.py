"""Formats and ingest on small generated images: round trips, idempotence, hostile files."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli
from workbench.export import export
from workbench.ingest import ingest

pytestmark = pytest.mark.unit


def make_tree(root: Path) -> dict:
    """Folder-per-class tree with a nested folder; returns {relpath: label}."""
    layout = {"cat/a.jpg": "cat", "cat/b.png": "cat", "dog/c.jpg": "dog", "dog/shop1/d.jpg": "dog"}
    for rel, _label in layout.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (60 + len(rel), 40), (len(rel) * 10 % 255, 80, 160)).save(p)
    return layout


def tree_snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


def test_folders_label_is_the_class_folder_even_when_nested(tmp_path, workspace_factory):
    ws = workspace_factory(["cat", "dog"])
    layout = make_tree(tmp_path / "photos")
    with ws.open_catalog() as cat:
        res = ingest(ws, cat, tmp_path / "photos", "folders")
        assert res.added == 4
        got = {
            Path(i.path).relative_to(tmp_path / "photos").as_posix(): i.label for i in cat.images()
        }
    assert got == layout


def test_reingest_changes_nothing_and_moved_file_is_recognised(tmp_path, workspace_factory):
    ws = workspace_factory(["cat", "dog"])
    make_tree(tmp_path / "photos")
    with ws.open_catalog() as cat:
        ingest(ws, cat, tmp_path / "photos", "folders")
        before = [(i.id, i.sha256, i.updated_at) for i in cat.images()]
        res = ingest(ws, cat, tmp_path / "photos", "folders")
        assert (res.added, res.unchanged) == (0, 4)
        assert [(i.id, i.sha256, i.updated_at) for i in cat.images()] == before
        # the user moves a file: same record, new path
        src = tmp_path / "photos" / "cat" / "a.jpg"
        dst = tmp_path / "photos" / "cat" / "renamed.jpg"
        os.rename(src, dst)
        res = ingest(ws, cat, tmp_path / "photos", "folders")
        assert res.moved == 1 and res.added == 0
        assert len(cat.images()) == 4
        assert cat.get_image_by_path(str(dst)) is not None


def test_unknown_class_lists_known_ones_and_writes_nothing(tmp_path, workspace_factory):
    ws = workspace_factory(["cat"])
    make_tree(tmp_path / "photos")
    with ws.open_catalog() as cat:
        with pytest.raises(
            Exception, match="unknown class 'dog'.*Known classes: cat.*--add-classes"
        ):
            ingest(ws, cat, tmp_path / "photos", "folders")
        assert cat.images() == []
        res = ingest(ws, cat, tmp_path / "photos", "folders", add_classes=True)
        assert res.new_classes == ["dog"] and res.added == 4
    assert "dog" in ws.taxonomy.all_labels


def test_hostile_files_become_unreadable_and_the_run_goes_on(tmp_path, workspace_factory):
    ws = workspace_factory(["cat"])
    d = tmp_path / "photos" / "cat"
    d.mkdir(parents=True)
    Image.new("RGB", (50, 50)).save(d / "good.jpg")
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("hello")
    full = (d / "good.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(full[: len(full) // 2])
    snap = tree_snapshot(tmp_path / "photos")
    with ws.open_catalog() as cat:
        res = ingest(ws, cat, tmp_path / "photos", "folders")
        reasons = {Path(p).name: r for p, r in res.unreadable}
        assert set(reasons) == {"empty.jpg", "text.jpg", "cut.jpg"}
        assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["text.jpg"]
        assert {i.status for i in cat.images() if i.path.endswith("good.jpg")} == {"active"}
        assert cat.status_counts()["images"]["by_status"] == {"active": 1, "unreadable": 3}
    assert tree_snapshot(tmp_path / "photos") == snap  # nothing written into the user's folders


def test_strict_turns_unreadable_into_exit_1(tmp_path):
    d = tmp_path / "photos" / "cat"
    d.mkdir(parents=True)
    Image.new("RGB", (50, 50)).save(d / "good.jpg")
    (d / "empty.jpg").write_bytes(b"")
    ws = str(tmp_path / "ws")
    r = CliRunner().invoke(cli, ["-w", ws, "init", "--classes", "cat"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["-w", ws, "ingest", str(tmp_path / "photos"), "--strict"])
    assert r.exit_code == 1 and "unreadable" in r.output


def _coco_fixture(tmp_path):
    img_dir = tmp_path / "coco" / "images"
    img_dir.mkdir(parents=True)
    Image.new("RGB", (100, 80)).save(img_dir / "one.jpg")
    Image.new("RGB", (120, 90)).save(img_dir / "two.jpg")
    coco = {
        "images": [
            {"id": 1, "file_name": "images/one.jpg", "width": 100, "height": 80},
            {"id": 2, "file_name": "images/two.jpg", "width": 120, "height": 90},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10.5, 5, 30, 20]},
            {"id": 2, "image_id": 1, "category_id": 8, "bbox": [50, 40, 20.25, 30]},
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 8, "name": "dog"}],
    }
    p = tmp_path / "coco" / "ann.json"
    p.write_text(json.dumps(coco))
    return p


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_ingest_export_ingest_is_lossless(tmp_path, workspace_factory, fmt):
    ws = workspace_factory(["cat", "dog"])
    src = _coco_fixture(tmp_path)
    with ws.open_catalog() as cat:
        ingest(ws, cat, src, "coco")
        orig = {
            i.path: sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in cat.boxes_for(i.id))
            for i in cat.images()
        }
        neg = [i.path for i in cat.images() if i.annotated and not cat.boxes_for(i.id)]
        out, n = export(
            ws, cat, fmt, tmp_path / f"out.{fmt}" if fmt == "coco" else tmp_path / "out"
        )
    assert n == 2
    ws2 = workspace_factory(["cat", "dog"])
    with ws2.open_catalog() as cat2:
        ingest(ws2, cat2, out, fmt)
        again = {
            i.path: sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in cat2.boxes_for(i.id))
            for i in cat2.images()
        }
        neg2 = [i.path for i in cat2.images() if i.annotated and not cat2.boxes_for(i.id)]
    assert again.keys() == orig.keys()
    for path in orig:
        for a, b in zip(orig[path], again[path]):
            assert a[0] == b[0] and all(abs(x - y) < 1e-6 for x, y in zip(a[1:], b[1:]))
        assert len(orig[path]) == len(again[path])
    assert neg2 == neg  # the image with no boxes stays a negative


def test_wrong_format_is_a_clear_error(tmp_path):
    make_tree(tmp_path / "photos")
    ws = str(tmp_path / "ws")
    CliRunner().invoke(cli, ["-w", ws, "init", "--classes", "cat,dog"])
    r = CliRunner().invoke(cli, ["-w", ws, "ingest", str(tmp_path / "photos"), "--format", "voc"])
    assert r.exit_code == 1 and "no Pascal VOC XML files" in r.output
    r = CliRunner().invoke(cli, ["-w", ws, "ingest", str(tmp_path / "photos"), "--format", "coco"])
    assert r.exit_code == 1 and "COCO" in r.output


def test_commands_without_workspace_say_run_init(tmp_path):
    r = CliRunner().invoke(cli, ["-w", str(tmp_path / "nope"), "status"])
    assert r.exit_code == 1 and "wb" in r.output and "init" in r.output


def test_status_json_shape_via_cli(tmp_path):
    make_tree(tmp_path / "photos")
    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(cli, ["-w", ws, "init", "--classes", "cat,dog"]).exit_code == 0
    assert CliRunner().invoke(cli, ["-w", ws, "ingest", str(tmp_path / "photos")]).exit_code == 0
    r = CliRunner().invoke(cli, ["-w", ws, "status", "--json"])
    data = json.loads(r.output)
    assert data["images"]["total"] == 4
    assert data["images"]["by_status"] == {"active": 4}
    assert data["images"]["by_label"] == {"cat": 2, "dog": 2}
    assert data["boxes"] == {"total": 0, "by_label": {}}


def test_default_taxonomy_has_two_levels(workspace_factory):
    ws = workspace_factory()
    tax = ws.taxonomy
    assert tax.classes("species") == ["elephant", "pangolin", "tiger", "non_wildlife"]
    assert len(tax.classes("category")) == 13
    assert tax.to_level("pangolin_claw", "species") == "pangolin"
    assert tax.to_level("non_wildlife", "category") == "non_wildlife"
