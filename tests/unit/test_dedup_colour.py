"""The pixel check compares colour at every hash distance (issue 15, item 4).

A perceptual hash sees grey levels only: flat images of different colours sit at hash
distance 0. They must not be set aside as copies; same-colour flat images and grayscale
copies of colour photos still are (docs/dedup.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from workbench.dedup.verify import Colour, same_colour, verify_pairs
from workbench.ingest import ingest

FLAT = {"dark_blue": (20, 30, 120), "magenta": (200, 30, 190), "black": (0, 0, 0)}


def photo(seed: int, size=(160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.BICUBIC)


def colour_of(img: Image.Image) -> Colour:
    return Colour.of(img.convert("RGB"))


# ---- the rules ------------------------------------------------------------------------
def test_flat_images_of_different_colours_do_not_match():
    cols = {n: colour_of(Image.new("RGB", (64, 48), c)) for n, c in FLAT.items()}
    assert all(c.flat for c in cols.values())
    for a in cols:
        for b in cols:
            assert same_colour(cols[a], cols[b]) == (a == b), (a, b)


def test_flat_images_of_one_colour_match_despite_jpeg_noise(tmp_path):
    Image.new("RGB", (64, 48), FLAT["magenta"]).save(tmp_path / "a.jpg", quality=40)
    Image.new("RGB", (200, 150), FLAT["magenta"]).save(tmp_path / "b.png")
    assert verify_pairs([(str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), False)]) == [1.0]


def test_a_flat_image_never_matches_a_textured_one():
    flat = colour_of(Image.new("RGB", (160, 120), (128, 128, 128)))
    assert not same_colour(flat, colour_of(photo(1)))


def test_a_grayscale_copy_matches_its_colour_original_but_a_tinted_one_does_not():
    original = photo(3)
    grey = colour_of(ImageOps.grayscale(original))
    assert grey.grey and not grey.flat
    assert same_colour(colour_of(original), grey)
    r, g, b = original.split()
    tinted = Image.merge("RGB", (r.point(lambda v: v // 3), g, b))  # red mostly taken out
    assert not same_colour(colour_of(original), colour_of(tinted))


def test_a_brightened_copy_keeps_its_chromaticity():
    original = photo(4)
    brighter = Image.fromarray((np.asarray(original, np.float32) * 1.3).clip(0, 255).astype("u1"))
    assert same_colour(colour_of(original), colour_of(brighter))


def test_hash_pairs_get_the_colour_check_only_and_grey_zone_pairs_both(tmp_path):
    photo(5).save(tmp_path / "a.png")
    photo(6).save(tmp_path / "b.png")  # another photo, same colours on the whole
    ImageOps.grayscale(photo(5)).save(tmp_path / "grey.png")
    pairs = [(str(tmp_path / "a.png"), str(tmp_path / n), False) for n in ("b.png", "grey.png")]
    colour_only = verify_pairs(pairs, structure=[False, False])
    both = verify_pairs(pairs, structure=[True, True])
    assert colour_only[1] == 1.0 and both[1] > 0.99  # the grayscale copy
    assert both[0] < 0.9  # structure tells the two photos apart


# ---- as a user meets it ---------------------------------------------------------------
@pytest.fixture
def flat_tree(tmp_path) -> Path:
    root = tmp_path / "photos" / "ivory"
    root.mkdir(parents=True)
    for name, rgb in FLAT.items():
        Image.new("RGB", (160, 120), rgb).save(root / f"{name}.jpg", quality=90)
    Image.new("RGB", (80, 60), FLAT["magenta"]).save(root / "magenta_small.png")
    photo(7).save(root / "p7.jpg", quality=90)
    ImageOps.grayscale(photo(7)).save(root / "p7_grey.jpg", quality=90)
    return root.parent


def test_dedup_keeps_flat_colours_apart_and_finds_real_copies(workspace_factory, flat_tree):
    from workbench.cli import cli

    ws = workspace_factory(classes=["ivory"])
    with ws.open_catalog() as catalog:
        ingest(ws, catalog, flat_tree, "folders", workers=1)
    res = CliRunner().invoke(
        cli,
        ["--workspace", str(ws.root), "dedup", "--no-progress", "--workers", "1"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    with ws.open_catalog() as catalog:
        status = {Path(im.path).name: im.status for im in catalog.images()}
        groups = sorted(
            sorted(Path(catalog.get_image(i).path).name for i in g.image_ids)
            for g in catalog.dup_groups()
        )
    assert groups == [["magenta.jpg", "magenta_small.png"], ["p7.jpg", "p7_grey.jpg"]]
    assert status["dark_blue.jpg"] == status["black.jpg"] == "active"
    assert sorted(n for n, s in status.items() if s == "duplicate") == [
        "magenta_small.png",
        "p7_grey.jpg",
    ]


def test_a_coloured_banner_along_an_edge_is_judged_on_the_centre():
    original = photo(8)
    banner = original.copy()
    banner.paste((255, 0, 0), (0, 0, 160, 15))  # a red band over the top 12 %
    a, b = colour_of(original), colour_of(banner)
    whole = sum(abs(x / sum(a.mean) - y / sum(b.mean)) for x, y in zip(a.mean, b.mean))
    assert whole > 0.05  # the whole image's colour moved past the tolerance
    assert same_colour(a, b)
