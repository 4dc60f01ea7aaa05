"""Issue 15, the first hour: a class folder ingested as PATH itself, unlabelled copies in
dedup, class names that differ only in case, and the one rule for symbolic links."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli
from workbench.errors import WorkbenchError
from workbench.formats import read
from workbench.taxonomy import Taxonomy

pytestmark = pytest.mark.unit


def photo(seed: int, size=(160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.BICUBIC)


def class_tree(root: Path, counts: dict[str, int]) -> Path:
    seed = 0
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            photo(seed).save(root / cls / f"{cls}_{seed}.jpg", quality=90)
            seed += 1
    return root


def tree_snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


def wb(ws: Path, *args: str):
    return CliRunner().invoke(cli, ["-w", str(ws), *args], catch_exceptions=False)


@pytest.fixture
def ws(tmp_path) -> Path:
    ws = tmp_path / "ws"
    assert wb(ws, "init", "--classes", "raccoon,kangaroo").exit_code == 0
    return ws


def catalog_labels(ws: Path) -> dict[str, str | None]:
    from workbench.workspace import Workspace

    with Workspace.open(ws).open_catalog() as cat:
        return {Path(i.path).name: i.label for i in cat.images()}


# ---- item 1: a class folder itself as PATH ----------------------------------------
def test_ingesting_a_class_folder_itself_warns_and_gives_the_parent_command(tmp_path, ws):
    photos = class_tree(tmp_path / "photos", {"raccoon": 3, "kangaroo": 2})
    res = wb(ws, "ingest", str(photos / "raccoon"), "--format", "folders")
    assert res.exit_code == 0, res.output
    assert "3 new" in res.output and "3 with no label" in res.output
    assert (
        f"warning: 3 image(s) under {photos / 'raccoon'} would get no label: with --format "
        "folders each sub-folder of PATH is a class, and images directly in PATH get none. "
        "'raccoon' is itself the class 'raccoon': did you mean the parent folder? "
        f"wb ingest {photos} --format folders"
    ) in res.output
    assert set(catalog_labels(ws).values()) == {None}


def test_strict_refuses_a_class_folder_itself_and_catalogs_nothing(tmp_path, ws):
    photos = class_tree(tmp_path / "photos", {"Raccoon": 2})
    before = tree_snapshot(photos)
    res = wb(ws, "ingest", str(photos / "Raccoon"), "--format", "folders", "--strict")
    assert res.exit_code == 1
    assert "2 image(s) under" in res.output and "did you mean the parent folder?" in res.output
    assert f"wb ingest {photos} --format folders" in res.output
    assert "Error: nothing was cataloged (--strict): 2 image(s) under" in res.output
    assert catalog_labels(ws) == {}
    assert tree_snapshot(photos) == before


def test_loose_images_in_a_folder_that_is_no_class_say_where_to_put_them(tmp_path, ws):
    photos = class_tree(tmp_path / "photos", {"raccoon": 1})
    photo(9).save(photos / "loose.jpg")
    res = wb(ws, "ingest", str(photos), "--format", "folders")
    assert res.exit_code == 0, res.output
    assert "1 with no label" in res.output
    assert "Move them into a sub-folder named after their class." in res.output
    assert "did you mean" not in res.output


def test_a_proper_class_tree_has_no_warning(tmp_path, ws):
    photos = class_tree(tmp_path / "photos", {"raccoon": 2, "kangaroo": 1})
    res = wb(ws, "ingest", str(photos), "--format", "folders", "--strict")
    assert res.exit_code == 0, res.output
    assert "0 with no label" in res.output and "warning" not in res.output


# ---- item 1b: unlabelled copies are duplicates, not conflicts ---------------------
def test_unlabelled_copies_of_labelled_images_are_duplicates_not_conflicts(tmp_path, ws):
    photos = class_tree(tmp_path / "photos", {"raccoon": 3, "kangaroo": 2})
    assert wb(ws, "ingest", str(photos)).exit_code == 0
    copies = tmp_path / "copies" / "raccoon"
    copies.mkdir(parents=True)
    for p in (photos / "raccoon").iterdir():
        shutil.copy(p, copies / f"copy_{p.name}")
    res = wb(ws, "ingest", str(copies), "--format", "folders")
    assert res.exit_code == 0 and "3 with no label" in res.output
    res = wb(ws, "dedup", "--json", "--no-progress", "--workers", "1")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    summary = report["summary"]
    assert (summary["duplicate_groups"], summary["conflict_groups"]) == (3, 0)
    for g in report["groups"]:
        kept = [i for i in g["images"] if i["keep"]]
        assert len(kept) == 1 and kept[0]["label"] == "raccoon"
    res = wb(ws, "status", "--json")
    assert json.loads(res.output)["images"]["by_status"] == {"active": 5, "duplicate": 3}


# ---- item 8a: class names compared case-insensitively ----------------------------
def test_init_refuses_classes_that_differ_only_in_case(tmp_path):
    res = wb(tmp_path / "ws", "init", "--classes", "raccoon,Raccoon")
    assert res.exit_code == 1
    assert (
        "--classes: 'Raccoon' and 'raccoon' differ only in case; class names are compared "
        "case-insensitively, so keep one spelling (e.g. 'raccoon')"
    ) in res.output
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Taxonomy.flat(["Kangaroo", "kangaroo"]),
        lambda: Taxonomy.flat(["raccoon", "Background"]),
        lambda: Taxonomy.from_dict(
            {"species": [{"name": "tiger", "categories": ["claw"]}, {"name": "Claw"}]}
        ),
        lambda: Taxonomy.flat(["raccoon"]).with_classes(["Wombat", "wombat"]),
    ],
)
def test_every_taxonomy_refuses_names_differing_only_in_case(build):
    with pytest.raises(WorkbenchError, match="differ only in case|reserved"):
        build()


def test_canonical_spelling_ignores_case():
    tax = Taxonomy.flat(["raccoon", "kangaroo"])
    assert tax.canonical("RACCOON") == "raccoon"
    assert tax.canonical("Background") == "background"
    assert tax.canonical("wombat") is None


def test_a_folder_spelled_differently_maps_onto_the_class(tmp_path, ws):
    photos = class_tree(tmp_path / "photos", {"Raccoon": 2, "KANGAROO": 1})
    res = wb(ws, "ingest", str(photos), "--add-classes")
    assert res.exit_code == 0, res.output
    assert res.output.count("'Raccoon' is the class 'raccoon' (class names ignore case)") == 1
    assert "'KANGAROO' is the class 'kangaroo'" in res.output
    assert "added classes" not in res.output
    assert sorted(catalog_labels(ws).values()) == ["kangaroo", "raccoon", "raccoon"]
    assert (ws / "taxonomy.toml").read_text().count("name =") == 3  # flat + 2 species


# ---- item 8a: one rule for symbolic links, files and folders alike ----------------
@pytest.fixture
def linked_tree(tmp_path) -> tuple[Path, Path]:
    photos = class_tree(tmp_path / "photos", {"raccoon": 1, "kangaroo": 1})
    (photos / "raccoon" / "day").mkdir()
    photo(20).save(photos / "raccoon" / "day" / "r_day.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    photo(30).save(elsewhere / "e.jpg")
    os.symlink(photos / "raccoon" / "day", photos / "raccoon" / "night")  # folder, inside
    os.symlink(photos / "raccoon", photos / "raccoon" / "loop")  # folder, a loop
    os.symlink(photos / "raccoon" / "day" / "r_day.jpg", photos / "kangaroo" / "k_link.jpg")
    os.symlink(elsewhere, photos / "kangaroo" / "outside")  # folder, leaves PATH
    os.symlink(elsewhere / "e.jpg", photos / "raccoon" / "out.jpg")  # file, leaves PATH
    return photos, elsewhere


def test_links_inside_path_are_followed_and_links_out_are_skipped(linked_tree):
    photos, elsewhere = linked_tree
    skipped: list[tuple[str, str]] = []
    got = {
        Path(it.path).relative_to(photos).as_posix(): it.label
        for it in read(
            photos, "folders", known_labels=["raccoon", "kangaroo"], skipped_links=skipped
        )
    }
    assert got == {
        "kangaroo/kangaroo_1.jpg": "kangaroo",
        "kangaroo/k_link.jpg": "kangaroo",
        "raccoon/raccoon_0.jpg": "raccoon",
        "raccoon/day/r_day.jpg": "raccoon",
        "raccoon/night/r_day.jpg": "raccoon",
    }
    assert sorted(skipped) == sorted(
        [
            (str(photos / "kangaroo" / "outside"), str(elsewhere.resolve())),
            (str(photos / "raccoon" / "out.jpg"), str((elsewhere / "e.jpg").resolve())),
        ]
    )


def test_cli_counts_links_that_leave_path_and_says_how_to_include_them(linked_tree, ws):
    photos, elsewhere = linked_tree
    res = wb(ws, "ingest", str(photos))
    assert res.exit_code == 0, res.output
    assert "ingested 5 files" in res.output
    assert f"skipped 2 symbolic link(s) that leave {photos}" in res.output
    assert (
        f"to include them, ingest the folder they point into: wb ingest {elsewhere.resolve()} "
        "--format folders"
    ) in res.output
    assert "e.jpg" not in catalog_labels(ws)


def test_a_folder_of_only_links_out_says_they_were_skipped(tmp_path, ws):
    photos = tmp_path / "photos" / "raccoon"
    photos.mkdir(parents=True)
    photo(1).save(tmp_path / "e.jpg")
    os.symlink(tmp_path / "e.jpg", photos / "e.jpg")
    res = wb(ws, "ingest", str(tmp_path / "photos"))
    assert res.exit_code == 1
    assert "1 symbolic link(s) leave the folder and were skipped" in res.output
