"""The catalog: schema, migrations, atomic writes, sticky splits, one read per question
and the records it returns."""

import ast
import dataclasses
import sqlite3
from pathlib import Path

import pytest

import workbench.catalog
from workbench.catalog import (
    AdjudicationTask,
    Box,
    Catalog,
    DupGroup,
    DupMember,
    EventRecord,
    ImageRecord,
    ModelRecord,
    PriorityRecord,
)
from workbench.detection.registry import Registry

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
    with pytest.raises(RuntimeError), cat.atomic():
        cat.add_image(_img("/a.jpg"), boxes=[Box("a", 0, 0, 10, 10)])
        raise RuntimeError("interrupted")
    assert cat.images() == []
    assert cat.boxes_by_image() == {}


def test_nested_atomic_rolls_back_only_the_inner_block(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    with cat.atomic():
        cat.add_image(_img("/a.jpg"))
        with pytest.raises(ValueError), cat.atomic():
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
    assert c["images"] == {
        "total": 2,
        "by_status": {"active": 1, "excluded": 1},
        "by_label": {"x": 1, "y": 1},
        "annotated": 1,
    }
    assert c["boxes"] == {"total": 2, "by_label": {"x": 1, "y": 1}}


# ---- one read per question, and what it returns ----------------------------------------
def _model(cat, version, **kw):
    cat.add_model(
        version,
        kw.get("parent"),
        "species",
        ["a", "b"],
        {"mAP50": 0.5},
        {"train": {"backbone": "mobilenet"}},
    )


def test_after_two_promotions_the_catalog_and_the_registry_name_the_second(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    registry = Registry(tmp_path / "models", cat)
    assert cat.promoted_model() is None and registry.promoted() is None
    _model(cat, "v001")
    _model(cat, "v002", parent="v001")
    cat.promote_model("v001")
    cat.promote_model("v002")
    assert cat.promoted_model().version == "v002"
    served = registry.promoted()
    assert isinstance(served, ModelRecord) and served.version == "v002"
    assert served.path == tmp_path / "models" / "v002" and served.parent == "v001"
    assert [m.version for m in cat.models() if m.promoted] == ["v002"]


def test_should_two_rows_be_marked_promoted_the_latest_promotion_wins(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    for version, at in (
        ("v001", "2026-01-01T00:00:00"),
        ("v002", "2026-01-02T00:00:00"),
        ("v003", None),
    ):
        _model(cat, version)
        cat.db.execute(
            "UPDATE models SET promoted = ?, promoted_at = ? WHERE version = ?",
            (int(at is not None), at, version),
        )
    assert cat.promoted_model().version == "v002"
    assert Registry(tmp_path / "models", cat).promoted().version == "v002"


def test_model_versions_come_back_as_frozen_records_with_json_decoded(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    _model(cat, "v001")
    cat.promote_model("v001")
    m = cat.model("v001")
    assert isinstance(m, ModelRecord) and cat.models() == [m] and cat.promoted_model() == m
    assert (m.parent, m.level, m.classes, m.metrics) == (
        None,
        "species",
        ["a", "b"],
        {"mAP50": 0.5},
    )
    assert m.backbone == "mobilenet" and m.promoted and m.promoted_at is not None
    assert m.to_dict()["version"] == "v001" and m.to_dict()["config"] == m.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.version = "v009"
    assert cat.model("v404") is None


def test_predictions_for_some_images_are_one_read_over_any_number_of_ids(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    ids = [cat.add_image(_img(f"/{n}.jpg")) for n in range(1200)]
    cat.store_predictions("v001", {i: [{"label": "a", "score": i / 2000}] for i in ids[::2]})
    everything = cat.predictions("v001")
    assert list(everything) == ids[::2]
    asked = ids[1:1100]  # more ids than SQLite binds in one statement
    some = cat.predictions("v001", iter(asked))
    assert list(some) == [i for i in ids[::2] if i in set(asked)]
    assert some == {i: everything[i] for i in some}
    assert cat.predictions("v001", []) == {} and cat.predictions("v002") == {}
    assert cat.versions_with_predictions() == ["v001"]


def test_priorities_come_back_as_records_and_uncertainty_reads_all_or_some(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    ids = [cat.add_image(_img(f"/{n}.jpg")) for n in range(3)]
    assert cat.latest_prioritized_version() is None
    cat.store_priorities(
        "v001",
        [(ids[0], 0.2, {"base": 0.2}), (ids[1], 0.9, {}), (ids[2], 0.5, {})],
        selected=[ids[1]],
    )
    rows = cat.priorities("v001")
    assert all(isinstance(r, PriorityRecord) for r in rows)
    assert [(r.image_id, r.rank, r.selected) for r in rows] == [
        (ids[1], 1, True),
        (ids[2], 2, False),
        (ids[0], 3, False),
    ]
    assert rows[2].path == "/0.jpg" and rows[2].components == {"base": 0.2}
    assert cat.priorities("v001", selected_only=True) == rows[:1]
    assert cat.uncertainty_by_image("v001") == {ids[0]: 0.2, ids[1]: 0.9, ids[2]: 0.5}
    assert cat.uncertainty_by_image("v001", [ids[0], ids[2], 999]) == {ids[0]: 0.2, ids[2]: 0.5}
    assert cat.latest_prioritized_version() == "v001"


def test_groups_adjudication_tasks_and_events_come_back_as_records(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite")
    a, b = (cat.add_image(_img(f"/{n}.jpg")) for n in "ab")
    gid = cat.save_dup_group("a+b", "duplicate", [DupMember(a, True, 0), DupMember(b, False, 1)])
    (group,) = cat.dup_groups()
    assert isinstance(group, DupGroup) and group == cat.dup_group(gid)
    assert group.image_ids == [a, b] and group.members[1] == DupMember(b, False, 1)
    cat.record_adjudication_tasks(5, [(gid, "a+b", 77)])
    task = cat.adjudication_tasks(5)[gid]
    assert isinstance(task, AdjudicationTask) and (task.task_id, task.group_key) == (77, "a+b")
    eid = cat.record_webhook_event("ANNOTATION_CREATED", {"x": 1}, project_id=5, task_id=77)
    (event,) = cat.webhook_events()
    assert isinstance(event, EventRecord)
    assert (event.id, event.payload, event.consumed) == (eid, {"x": 1}, False)


def test_a_catalog_from_before_the_adjudication_rename_keeps_its_tasks(tmp_path, monkeypatch):
    """A catalog made by 0.1.0 (migrations 1-2, `wb dedup review`'s table
    ``ls_review_tasks``) opens, migrates, and its rows read back as AdjudicationTask."""
    from workbench.catalog import core
    from workbench.catalog.schema import MIGRATIONS

    monkeypatch.setattr(core, "MIGRATIONS", MIGRATIONS[:2])
    old = Catalog.open(tmp_path / "c.sqlite")
    a, b = (old.add_image(_img(f"/{n}.jpg")) for n in "ab")
    gid = old.save_dup_group("a+b", "conflict", [DupMember(a, True, 0), DupMember(b, False, 1)])
    with old.atomic() as db:
        db.execute(
            "INSERT INTO ls_review_tasks (project_id, group_id, group_key, task_id, "
            "pushed_at, applied_annotation_id, applied_updated_at) "
            "VALUES (5, ?, 'a+b', 77, 'then', 3, 'later')",
            (gid,),
        )
    assert old.schema_version == 2
    old.close()
    monkeypatch.undo()

    cat = Catalog.open(tmp_path / "c.sqlite")
    assert cat.schema_version == len(MIGRATIONS) >= 3
    assert cat.adjudication_tasks(5) == {
        gid: AdjudicationTask(5, gid, "a+b", 77, "then", 3, "later")
    }
    names = {r[0] for r in cat.db.execute("SELECT name FROM sqlite_master")}
    assert {"ls_adjudication_tasks", "ls_adjudication_tasks_task"} <= names
    assert not {n for n in names if "review" in n}
    cat.set_adjudication_applied(5, gid, 4, "now")  # the renamed table takes writes
    assert cat.adjudication_tasks(5)[gid].applied_annotation_id == 4


def test_every_dataclass_of_the_catalog_is_defined_in_records_py():
    package = Path(workbench.catalog.__file__).parent
    elsewhere = [
        f"{path.name}:{node.name}"
        for path in sorted(package.glob("*.py"))
        if path.name != "records.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any("dataclass" in ast.unparse(d) for d in node.decorator_list)
    ]
    assert elsewhere == []
