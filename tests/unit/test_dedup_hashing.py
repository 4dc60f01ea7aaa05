"""The hashing pipeline: imagededup's arithmetic bit for bit, reduced-size decoding close
to imagededup's own hashes, corrupt files still refused, and versioned cache keys."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

import workbench.dedup.hashing as hashing
from workbench.dedup.hashing import (
    METHODS,
    cache_keys,
    centre_view,
    decode_min_side,
    encode,
    hash_chunk,
    hash_grey,
    hash_image,
)
from workbench.images import UnreadableImage, open_grey_reduced, open_image

pytestmark = pytest.mark.unit


def _imagededup(method: str):
    from imagededup.methods import AHash, DHash, PHash, WHash

    cls = {"phash": PHash, "dhash": DHash, "whash": WHash, "ahash": AHash}[method]
    return cls(verbose=False)


def _photo(seed: int, size=(640, 480)) -> Image.Image:
    """A smooth random picture with some texture: hashes of it are not degenerate."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 255, (9, 12, 3), dtype=np.uint8)).resize(
        size, Image.BICUBIC
    )
    noise = rng.normal(0, 12, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(base, float) + noise, 0, 255).astype(np.uint8))


def _distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.mark.parametrize("method", METHODS)
def test_each_hash_is_imagededups_bit_for_bit_on_the_same_grey_picture(method):
    theirs = _imagededup(method)
    for seed in range(12):
        grey = _photo(seed, size=(200 + 37 * seed, 150 + 11 * seed)).convert("L")
        for view in (grey, centre_view(grey), ImageOps.mirror(grey)):
            assert hash_grey(view, method) == theirs.encode_image(image_array=np.asarray(view))


def test_hashes_match_imagededup_on_real_photos(kangaroo_dir):
    """Bit for bit on the same grey picture; from the file (reduced decode, grey first)
    within 2 bits of imagededup's encode_image(image_file=...) (measured: 115 of 163
    identical, the rest at 2)."""
    theirs = _imagededup("phash")
    files = sorted((kangaroo_dir / "images").glob("*.jpg"))
    distances = []
    for path, hashes, reason in hash_chunk(("phash", [str(p) for p in files])):
        if hashes is None:
            assert "truncated" in reason and path.endswith("00090.jpg")
            continue
        grey = open_image(path).convert("L")
        assert hash_grey(grey, "phash") == theirs.encode_image(image_array=np.asarray(grey))
        distances.append(_distance(hashes.hash, theirs.encode_image(image_file=path)))
    assert len(distances) == len(files) - 1
    assert max(distances) <= 4 and np.mean(distances) <= 1.0
    assert np.mean(np.array(distances) == 0) >= 0.6


def test_big_jpeg_is_decoded_reduced_and_hashes_like_the_full_decode(tmp_path):
    p = tmp_path / "big.jpg"
    _photo(3, size=(3200, 2400)).save(p, quality=90)
    need = decode_min_side("phash")
    small = open_grey_reduced(p, need)
    assert small.mode == "L" and min(small.size) >= need and small.size == (400, 300)  # 1/8
    full = hash_image(open_image(p))
    ((_, reduced, reason),) = hash_chunk(("phash", [str(p)]))
    assert reason is None
    for a, b in zip(vars(full).values(), vars(reduced).values()):
        assert _distance(a, b) <= 4
    assert min(open_grey_reduced(p, 2000).size) >= 2000  # never below what was asked


def test_reduced_decode_keeps_exif_orientation(tmp_path):
    upright = _photo(5, size=(800, 600))
    upright.save(tmp_path / "upright.jpg", quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: displayed after a 90 degree turn
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rot6.jpg", quality=92, exif=exif)
    assert (
        open_grey_reduced(tmp_path / "rot6.jpg", 64).size[0]
        > open_grey_reduced(tmp_path / "rot6.jpg", 64).size[1]
    )
    r = encode([tmp_path / "upright.jpg", tmp_path / "rot6.jpg"], workers=1)
    a, b = (r.get(str(tmp_path / n)) for n in ("upright.jpg", "rot6.jpg"))
    assert _distance(a.hash, b.hash) <= 2 and _distance(a.centre_hash, b.centre_hash) <= 2


def test_truncated_and_corrupt_files_are_still_refused_at_reduced_size(tmp_path):
    p = tmp_path / "full.jpg"
    _photo(1, size=(1600, 1200)).save(p, quality=90)
    data = p.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="truncated"):
        open_grey_reduced(cut, decode_min_side("phash"))
    r = encode([p, cut], workers=1)
    assert list(r.hashes) == [str(p)]
    assert r.unreadable[0][0] == str(cut) and "truncated" in r.unreadable[0][1]


def test_real_truncated_photo_is_refused(kangaroo_dir):
    r = encode([kangaroo_dir / "images" / "00090.jpg"], workers=1)
    assert not r.hashes and "truncated" in r.unreadable[0][1]


def test_odd_modes_hash_in_grey(tmp_path):
    rgb = _photo(2, size=(300, 200))
    rgba = rgb.convert("RGBA")
    rgba.save(tmp_path / "a.png")
    rgb.convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    rgb.save(tmp_path / "rgb.png")
    r = encode([tmp_path / "rgb.png", tmp_path / "a.png", tmp_path / "c.jpg"], workers=1)
    assert not r.unreadable
    ref = r.hashes[str(tmp_path / "rgb.png")]
    assert r.hashes[str(tmp_path / "a.png")] == ref  # opaque alpha changes nothing
    assert _distance(r.hashes[str(tmp_path / "c.jpg")], ref) <= 4


def test_cache_keys_carry_the_pipeline_version(monkeypatch):
    assert cache_keys("phash") == (
        f"phash:pipeline{hashing.PIPELINE_VERSION}",
        f"phash:pipeline{hashing.PIPELINE_VERSION}:centre",
    )
    assert "phash" not in cache_keys("phash") and "phash:centre" not in cache_keys("phash")
    monkeypatch.setattr(hashing, "PIPELINE_VERSION", hashing.PIPELINE_VERSION + 1)
    assert cache_keys("phash")[0].endswith(f":pipeline{hashing.PIPELINE_VERSION}")


def test_hashes_of_an_older_pipeline_are_not_read_and_are_rehashed(
    workspace_factory, tmp_path, monkeypatch
):
    from workbench.dedup.run import DedupOptions, find_duplicates
    from workbench.ingest import ingest

    photos = tmp_path / "photos" / "ivory"
    photos.mkdir(parents=True)
    for i in range(3):
        _photo(i, size=(120, 90)).save(photos / f"p{i}.jpg")
    ws = workspace_factory(classes=["ivory"])
    with ws.open_catalog() as catalog:
        ingest(ws, catalog, photos.parent, "folders", workers=1)
        ids = [im.id for im in catalog.images()]
        # what version 1 wrote: all-zero hashes would make every image one group
        for key in ("phash", "phash:centre"):
            catalog.save_image_hashes(key, [(i, "0" * 16, "0" * 16) for i in ids])
        run = find_duplicates(catalog, DedupOptions(workers=1))
        assert (run.hashed_now, run.hashed_cached) == (3, 0)
        assert not run.group_ids  # the stale identical hashes were not compared
        assert set(catalog.image_hashes(cache_keys("phash")[0])) == set(ids)
        assert find_duplicates(catalog, DedupOptions(workers=1)).hashed_cached == 3
        monkeypatch.setattr(hashing, "PIPELINE_VERSION", hashing.PIPELINE_VERSION + 1)
        assert find_duplicates(catalog, DedupOptions(workers=1)).hashed_now == 3


def test_mirror_and_centre_views_hash_what_they_show():
    img = _photo(7, size=(400, 300))
    h = hash_image(img)
    grey = img.convert("L")
    assert h.hash == hash_grey(grey) and h.mirror_hash == hash_grey(ImageOps.mirror(grey))
    assert h.centre_hash == hash_grey(centre_view(grey))
    assert h.centre_mirror_hash == hash_grey(ImageOps.mirror(centre_view(grey)))
