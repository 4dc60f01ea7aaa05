"""The catalog: schema, migrations, atomic writes, sticky splits."""
import sqlite3

import pytest

from workbench.catalog import Box, Catalog, ImageRecord

pytestmark = pytest.mark.unit


def _img(path, label="a"):
    return ImageRecord(id=None, path=path, sha256="x" * 64, width=100, height=50, label=label)


def test_new_catalog_is_wal_with_schema_version(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    assert cat.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.schema_version >= 1
    tables = {r[0] for r in cat.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "boxes", "dup_groups", "ls_tasks", "models", "predictions"} <= tables
    cat.close()
    # re-opening applies nothing twice
    cat = Catalog.open(tmp_path / "c.sqlite")
    n = cat.db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert n == cat.schema_version


def test_failed_transaction_leaves_nothing_behind(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    with pytest.raises(RuntimeError):
        with cat.atomic():
            cat.add_image(_img("/a.jpg"), boxes=[Box("a", 0, 0, 10, 10)])
            raise RuntimeError("interrupted")
    assert cat.images() == []
    assert cat.boxes_by_image() == {}


def test_nested_atomic_rolls_back_only_the_inner_block(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    with cat.atomic():
        cat.add_image(_img("/a.jpg"))
        with pytest.raises(ValueError):
            with cat.atomic():
                cat.add_image(_img("/b.jpg"))
                raise ValueError
    assert [i.path for i in cat.images()] == ["/a.jpg"]


def test_same_path_twice_is_refused(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    cat.add_image(_img("/a.jpg"))
    with pytest.raises(sqlite3.IntegrityError):
        cat.add_image(_img("/a.jpg"))


def test_splits_are_sticky(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    i = cat.add_image(_img("/a.jpg"))
    cat.set_splits({i: "test"})
    cat.set_splits({i: "train"})
    assert cat.get_image(i).split == "test"


def test_replace_boxes_by_source_keeps_other_sources(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    i = cat.add_image(_img("/a.jpg"), boxes=[Box("a", 0, 0, 5, 5)])
    cat.replace_boxes(i, [Box("b", 1, 1, 6, 6, source="labelstudio")], source="labelstudio")
    cat.replace_boxes(i, [Box("c", 2, 2, 7, 7, source="labelstudio")], source="labelstudio")
    labels = sorted(b.label for b in cat.boxes_for(i))
    assert labels == ["a", "c"]


def test_status_counts_shape(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    cat.add_image(_img("/a.jpg", "x"), boxes=[Box("x", 0, 0, 5, 5), Box("y", 0, 0, 5, 5)])
    i = cat.add_image(_img("/b.jpg", "y"))
    cat.set_status([i], "excluded")
    c = cat.status_counts()
    assert c["images"] == {"total": 2, "by_status": {"active": 1, "excluded": 1},
                           "by_label": {"x": 1, "y": 1}, "annotated": 1}
    assert c["boxes"] == {"total": 2, "by_label": {"x": 1, "y": 1}}
