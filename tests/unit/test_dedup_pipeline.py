"""`wb dedup` end to end on small synthetic photos: groups, keepers, statuses, settling."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from workbench.dedup.resolve import resolve_group
from workbench.dedup.run import DedupOptions, EmptyCatalog, find_duplicates
from workbench.errors import WorkbenchError
from workbench.ingest import ingest


def photo(seed: int, size=(160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.BICUBIC)


def tree_snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


@pytest.fixture
def photos(tmp_path) -> Path:
    """ivory/: 6 distinct photos, a resized copy of p0, an exact copy of p1;
    resin/: a mirrored copy of p2 (a conflict); plus one broken file."""
    root = tmp_path / "photos"
    (root / "ivory").mkdir(parents=True)
    (root / "resin").mkdir()
    for i in range(6):
        photo(i).save(root / "ivory" / f"p{i}.jpg", quality=90)
    photo(0).resize((80, 60), Image.LANCZOS).save(root / "ivory" / "p0_small.jpg", quality=60)
    (root / "ivory" / "p1_copy.jpg").write_bytes((root / "ivory" / "p1.jpg").read_bytes())
    ImageOps.mirror(photo(2)).save(root / "resin" / "p2_mirror.jpg", quality=85)
    (root / "ivory" / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    return root


@pytest.fixture
def ws_with_photos(workspace_factory, photos):
    ws = workspace_factory(classes=["ivory", "resin"])
    catalog = ws.open_catalog()
    ingest(ws, catalog, photos, "folders", workers=1)
    yield ws, catalog, photos
    catalog.close()


def by_name(catalog) -> dict:
    return {Path(im.path).name: im for im in catalog.images()}


def test_groups_keepers_and_statuses_follow_the_rules(ws_with_photos):
    ws, catalog, photos = ws_with_photos
    before = tree_snapshot(photos)
    run = find_duplicates(catalog, DedupOptions(workers=1))
    im = by_name(catalog)
    groups = {g.id: g for g in map(catalog.dup_group, run.group_ids)}
    members = {
        frozenset(Path(catalog.get_image(i).path).name for i in g.image_ids): g
        for g in groups.values()
    }
    assert set(members) == {
        frozenset({"p0.jpg", "p0_small.jpg"}),
        frozenset({"p1.jpg", "p1_copy.jpg"}),
        frozenset({"p2.jpg", "p2_mirror.jpg"}),
    }
    # resized copy: the bigger original is kept
    assert members[frozenset({"p0.jpg", "p0_small.jpg"})].kind == "duplicate"
    assert im["p0.jpg"].status == "active" and im["p0_small.jpg"].status == "duplicate"
    # identical bytes, same size: the first ingested is kept
    first, second = sorted([im["p1.jpg"], im["p1_copy.jpg"]], key=lambda r: r.id)
    assert (first.status, second.status) == ("active", "duplicate")
    # mirrored copy under another label: a conflict, both out of export
    assert members[frozenset({"p2.jpg", "p2_mirror.jpg"})].kind == "conflict"
    assert im["p2.jpg"].status == im["p2_mirror.jpg"].status == "conflict"
    active = {Path(r.path).name for r in catalog.images(status="active")}
    assert "p2.jpg" not in active and "p2_mirror.jpg" not in active and "p3.jpg" in active
    assert [Path(p).name for p, _ in run.unreadable] == ["broken.jpg"]
    assert tree_snapshot(photos) == before


def test_a_rerun_hashes_nothing_and_changes_nothing(ws_with_photos):
    ws, catalog, _ = ws_with_photos
    first = find_duplicates(catalog, DedupOptions(workers=1))
    statuses = {im.id: im.status for im in catalog.images()}
    second = find_duplicates(catalog, DedupOptions(workers=1))
    assert first.hashed_now == 9 and second.hashed_now == 0 and second.hashed_cached == 9
    assert sorted(second.group_ids) == sorted(first.group_ids)
    assert {im.id: im.status for im in catalog.images()} == statuses


def conflict_group(catalog, run):
    return next(g for g in map(catalog.dup_group, run.group_ids) if g.kind == "conflict")


def test_resolving_with_a_label_relabels_keeps_one_and_survives_a_rerun(ws_with_photos):
    ws, catalog, _ = ws_with_photos
    g = conflict_group(catalog, find_duplicates(catalog, DedupOptions(workers=1)))
    resolve_group(catalog, g.id, label="ivory", resolved_by="labelstudio:ann")
    im = by_name(catalog)
    assert im["p2_mirror.jpg"].label == "ivory"
    assert sorted([im["p2.jpg"].status, im["p2_mirror.jpg"].status]) == ["active", "duplicate"]
    # a re-ingest puts the folder label back; the settled label must hold
    catalog.update_image(im["p2_mirror.jpg"].id, label="resin")
    run = find_duplicates(catalog, DedupOptions(workers=1))
    again = catalog.dup_group(g.id)
    assert g.id in run.group_ids and len(catalog.dup_groups()) == 3
    assert (again.resolution, again.resolved_label, again.resolved_by, again.kind) == (
        "label",
        "ivory",
        "labelstudio:ann",
        "duplicate",
    )
    assert by_name(catalog)["p2_mirror.jpg"].label == "ivory"
    assert not [r for r in catalog.images() if r.status == "conflict"]


def test_distinct_images_go_back_to_active_and_are_not_grouped_again(ws_with_photos):
    ws, catalog, _ = ws_with_photos
    g = conflict_group(catalog, find_duplicates(catalog, DedupOptions(workers=1)))
    resolve_group(catalog, g.id, distinct=True)
    run = find_duplicates(catalog, DedupOptions(workers=1))
    im = by_name(catalog)
    assert im["p2.jpg"].status == im["p2_mirror.jpg"].status == "active"
    assert g.id not in run.group_ids and run.suppressed_distinct == 1
    assert catalog.dup_group(g.id).resolution == "distinct"


def test_a_new_copy_joining_a_settled_group_under_another_label_reopens_a_conflict(
    ws_with_photos, tmp_path
):
    ws, catalog, photos = ws_with_photos
    g = conflict_group(catalog, find_duplicates(catalog, DedupOptions(workers=1)))
    resolve_group(catalog, g.id, label="ivory")
    photo(2).resize((120, 90)).save(photos / "resin" / "p2_later.jpg", quality=80)
    ingest(ws, catalog, photos, "folders", workers=1)
    run = find_duplicates(catalog, DedupOptions(workers=1))
    new = conflict_group(catalog, run)
    names = {Path(catalog.get_image(i).path).name for i in new.image_ids}
    assert names == {"p2.jpg", "p2_mirror.jpg", "p2_later.jpg"} and new.resolution is None
    assert catalog.dup_group(g.id).resolution == "label"  # the history stays


def test_resolve_refuses_unknown_groups_and_both_answers(ws_with_photos):
    ws, catalog, _ = ws_with_photos
    find_duplicates(catalog, DedupOptions(workers=1))
    with pytest.raises(WorkbenchError, match="no duplicate group 999; known groups"):
        resolve_group(catalog, 999, distinct=True)
    with pytest.raises(WorkbenchError, match="exactly one"):
        resolve_group(catalog, 1, label="ivory", distinct=True)


def test_empty_catalog_is_a_clear_error(workspace_factory):
    ws = workspace_factory(classes=["ivory"])
    with ws.open_catalog() as catalog, pytest.raises(EmptyCatalog, match="wb ingest"):
        find_duplicates(catalog)


# ---- command line ----------------------------------------------------------------
def wb(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], catch_exceptions=False)


def test_cli_dedup_writes_the_report_and_resolve_settles(ws_with_photos, tmp_path):
    ws, catalog, photos = ws_with_photos
    before = tree_snapshot(photos)
    extra = tmp_path / "out" / "dedup.json"
    res = wb(ws, "dedup", "--json", "--no-progress", "--workers", "1", "--report-json", str(extra))
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["summary"]["images"] == 9
    assert (report["summary"]["duplicate_groups"], report["summary"]["conflict_groups"]) == (2, 1)
    conflict = next(g for g in report["groups"] if g["kind"] == "conflict")
    assert {i["label"] for i in conflict["images"]} == {"ivory", "resin"}
    assert all(os.path.isabs(i["path"]) and i["keep"] is False for i in conflict["images"])
    dup = next(g for g in report["groups"] if g["kind"] == "duplicate")
    assert sum(i["keep"] for i in dup["images"]) == 1
    assert json.loads(extra.read_text()) == report
    out = ws.reports_dir / "dedup"
    page = (out / "index.html").read_text()
    thumbs = list((out / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 6 and all(max(Image.open(t).size) <= 160 for t in thumbs)
    assert page.count("class='g ") == 3 and "p2_mirror.jpg" in page and "broken.jpg" in page
    assert (out / "report.csv").read_text().count("\n") == 7
    res = wb(ws, "dedup", "resolve", conflict["id"], "--label", "resin")
    assert res.exit_code == 0 and f"group {conflict['id']} settled as label 'resin'" in res.output
    res = wb(ws, "dedup", "--no-progress", "--workers", "1")
    assert res.exit_code == 0 and "conflict groups" in res.output
    assert tree_snapshot(photos) == before


def test_cli_resolve_with_an_unknown_label_fails_with_the_valid_ones(ws_with_photos):
    ws, catalog, _ = ws_with_photos
    assert wb(ws, "dedup", "--no-progress", "--workers", "1").exit_code == 0
    res = wb(ws, "dedup", "resolve", "1", "--label", "zebra")
    assert res.exit_code == 1
    assert "unknown label 'zebra'; valid: ivory, resin, background" in res.output
    res = wb(ws, "dedup", "resolve", "1")
    assert res.exit_code == 2 and "exactly one of --label CLASS or --distinct" in res.output


def test_cli_dedup_on_an_empty_catalog_says_what_to_do(workspace_factory):
    ws = workspace_factory(classes=["ivory"])
    res = wb(ws, "dedup", "--no-progress")
    assert res.exit_code == 1
    assert "the catalog has no images; add some with `wb ingest PATH` first" in res.output
