"""`wb dedup` on real photos with planted copies, and on the built-in demo data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.dedup.planting import plant_copies
from workbench.dedup.resolve import resolve_group
from workbench.dedup.run import DedupOptions, find_duplicates
from workbench.ingest import ingest

# 00007/00033 are the same photo in the source set (checked by eye); 00101/00118 are two
# shots of one scene at hash distance 12 (a hard negative); 00090 is a truncated file.
SOURCES = [
    "00001",
    "00002",
    "00004",
    "00007",
    "00009",
    "00014",
    "00033",
    "00045",
    "00090",
    "00101",
    "00118",
    "00130",
    "00151",
    "00160",
]


def snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def planted_run(kangaroo_dir, module_tmp):
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    tmp = module_tmp.mktemp("dedup-kangaroo")
    srcs = [kangaroo_dir / "images" / f"{s}.jpg" for s in SOURCES]
    planted = plant_copies(
        [s for s in srcs if s.exists()], tmp / "photos", copies_per_source=1, conflict_every=3
    )
    (tmp / "photos" / "planted.json").unlink()  # only photos in the tree
    ws = Workspace.create(tmp / "ws", Taxonomy.flat(["kangaroo", "wallaby"]))
    catalog = ws.open_catalog()
    ingest(ws, catalog, tmp / "photos", "folders", workers=1)
    before = snapshot(tmp / "photos")
    run = find_duplicates(catalog, DedupOptions(workers=2))
    yield planted, catalog, run, before, tmp / "photos"
    catalog.close()


def group_of(catalog, run) -> dict[str, int]:
    out = {}
    for gid in run.group_ids:
        for i in catalog.dup_group(gid).image_ids:
            out[catalog.get_image(i).path] = gid
    return out


def test_every_planted_copy_lands_with_its_original(planted_run):
    planted, catalog, run, _, _ = planted_run
    groups = group_of(catalog, run)
    kinds = {c.kind for c in planted.copies}
    assert kinds == {
        "resized",
        "reencoded",
        "cropped",
        "brightened",
        "grayscale",
        "banner",
        "mirrored",
    }
    missed = [
        (Path(c.copy).name, c.kind)
        for c in planted.copies
        if groups.get(c.copy) is None or groups.get(c.copy) != groups.get(c.original)
    ]
    assert missed == []


def test_no_group_mixes_different_photos(planted_run):
    planted, catalog, run, _, _ = planted_run
    source = planted.source_of()
    same_photo = {"00007": "00033"}  # a real duplicate in the source set
    for gid in run.group_ids:
        roots = {
            Path(source[catalog.get_image(i).path]).stem for i in catalog.dup_group(gid).image_ids
        }
        roots = {same_photo.get(r, r) for r in roots}
        assert len(roots) == 1, roots
    groups = group_of(catalog, run)
    orig = {Path(p).stem: p for p in planted.originals}
    assert groups[orig["00007"]] == groups[orig["00033"]]
    assert groups.get(orig["00101"]) != groups.get(orig["00118"])


def test_conflicts_and_duplicates_get_their_statuses(planted_run):
    planted, catalog, run, _, _ = planted_run
    for gid in run.group_ids:
        g = catalog.dup_group(gid)
        members = [catalog.get_image(i) for i in g.image_ids]
        labels = {m.label for m in members}
        if g.kind == "conflict":
            assert labels == {"kangaroo", "wallaby"}
            assert {m.status for m in members} == {"conflict"} and not any(
                x.keep for x in g.members
            )
        else:
            assert len(labels) == 1
            kept = [m for m in members if m.status == "active"]
            assert len(kept) == 1 and [x.image_id for x in g.members if x.keep] == [kept[0].id]
            best = max(m.pixels for m in members)
            assert kept[0].pixels == best
            assert kept[0].id == min(m.id for m in members if m.pixels == best)
    conflicts = [c for c in planted.copies if c.conflict]
    assert conflicts and all(
        catalog.get_image_by_path(c.copy).status == "conflict" for c in conflicts
    )


def test_unreadable_photo_is_listed_and_nothing_is_written_to_the_photos(planted_run):
    planted, catalog, run, before, photos = planted_run
    assert [Path(p).name for p, _ in run.unreadable] == ["00090.jpg"]
    assert snapshot(photos) == before


# ---- the built-in demo data ----------------------------------------------------------
def test_demo_data_planted_duplicates_and_conflicts_are_found(demo_data, workspace_factory):
    from workbench.export import export

    planted = json.loads((demo_data / "planted.json").read_text())
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        ingest(ws, catalog, demo_data / "images", "folders", workers=1)
        before = snapshot(demo_data)
        run = find_duplicates(catalog, DedupOptions(workers=2))
        groups = group_of(catalog, run)
        path = lambda rel: str((demo_data / rel).resolve())  # noqa: E731
        for a, b in planted["exact_duplicates"]:
            assert groups.get(path(a)) is not None and groups[path(a)] == groups.get(path(b))
        # the demo's crops remove 10-20 % per side, past "a few percent": not promised
        near = [(a, b, k) for a, b, k in planted["near_duplicates"] if k != "crop"]
        missed = [
            (b, k)
            for a, b, k in near
            if groups.get(path(a)) != groups.get(path(b)) or groups.get(path(a)) is None
        ]
        assert missed == []
        conflict_paths = set()
        for a, b in planted["conflicts"]:
            assert groups.get(path(a)) is not None and groups[path(a)] == groups.get(path(b))
            assert catalog.dup_group(groups[path(a)]).kind == "conflict"
            conflict_paths |= {path(a), path(b)}
        out, n = export(ws, catalog, "coco", ws.root / "export.json")
        exported = json.loads(Path(out).read_text()) if Path(out).is_file() else None
        assert n == len(catalog.images(status="active"))
        assert not conflict_paths & {im.path for im in catalog.images(status="active")}
        if exported is not None:
            names = json.dumps(exported["images"])
            assert not any(
                Path(p).name in names and Path(p).parent.name in names for p in conflict_paths
            )
        # settle one conflict with a label: it leaves conflict, one image is kept
        gid = groups[path(planted["conflicts"][0][0])]
        resolve_group(
            catalog, gid, label=catalog.get_image_by_path(path(planted["conflicts"][0][0])).label
        )
        assert {catalog.get_image(i).status for i in catalog.dup_group(gid).image_ids} == {
            "active",
            "duplicate",
        }
    assert snapshot(demo_data) == before
