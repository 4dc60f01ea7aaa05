"""Pair search, grouping rules and hashing on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from workbench.catalog.records import ImageRecord
from workbench.dedup.groups import Edge, connected_components, group_key, group_kind, keeper
from workbench.dedup.hashing import UnknownHashMethod, encode, hash_image, hex_to_uint64
from workbench.dedup.search import find_pairs


def brute_force(h: np.ndarray, t: int, m: np.ndarray | None = None) -> set:
    out = set()
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            d = bin(int(h[i]) ^ int(h[j])).count("1")
            if m is not None:
                d = min(
                    d, bin(int(h[i]) ^ int(m[j])).count("1"), bin(int(m[i]) ^ int(h[j])).count("1")
                )
            if d <= t:
                out.add((i, j))
    return out


def near_hashes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**62, size=n, dtype=np.int64).astype(np.uint64)
    for k in range(0, n - 1, 3):  # every third hash gets a near twin
        h[k + 1] = h[k] ^ np.uint64(int(rng.integers(0, 2**10)))
    return h


@pytest.mark.parametrize("block", [7, 1 << 24])
def test_find_pairs_matches_brute_force_in_any_block_size(block):
    h = near_hashes(60, seed=1)
    pairs = find_pairs(h, 6, block_elements=block)
    assert pairs.as_set() == brute_force(h, 6)
    assert len(pairs) > 10
    for i, j, d, _ in pairs:
        assert d == bin(int(h[i]) ^ int(h[j])).count("1") <= 6


def test_find_pairs_with_mirrors_finds_a_hash_equal_to_anothers_mirror():
    h = near_hashes(40, seed=2)
    m = near_hashes(40, seed=3)
    m[5] = h[30]  # image 5 mirrored is image 30
    pairs = find_pairs(h, 4, mirror_hashes=m)
    assert pairs.as_set() == brute_force(h, 4, m)
    hit = [p for p in pairs if p[:2] == (5, 30)]
    assert hit and hit[0][2] == 0 and hit[0][3] is True


def test_find_pairs_takes_hex_strings_like_imagededup():
    pairs = find_pairs(["ff00ff00ff00ff00", "ff00ff00ff00ff01", "0123456789abcdef"], 2)
    assert list(pairs) == [(0, 1, 1, False)]


@pytest.mark.parametrize("bad, err", [(-1, ValueError), (65, ValueError), (2.5, TypeError)])
def test_find_pairs_rejects_a_bad_threshold_up_front(bad, err):
    with pytest.raises(err, match="between 0 and 64"):
        find_pairs(["00", "01"], bad)


def test_components_join_chains_and_keep_singletons_out():
    edges = [Edge(1, 2, 0, "hash"), Edge(2, 3, 4, "hash"), Edge(7, 9, 1, "exact")]
    assert connected_components(edges) == [[1, 2, 3], [7, 9]]


def rec(i, w, h, label="a", ingested="2026-01-01T00:00:0{}"):
    return ImageRecord(
        id=i,
        path=f"/x/{i}.jpg",
        sha256=f"{i:064x}",
        width=w,
        height=h,
        label=label,
        ingested_at=ingested.format(i),
    )


def test_keeper_is_the_largest_image_then_the_first_ingested():
    assert keeper([rec(1, 100, 100), rec(2, 200, 100), rec(3, 50, 50)]).id == 2
    assert keeper([rec(3, 100, 100), rec(2, 100, 100)]).id == 2


def test_kind_is_conflict_when_labels_differ_and_key_ignores_order():
    a, b = rec(1, 10, 10, "ivory"), rec(2, 10, 10, "resin")
    assert group_kind([a, b]) == "conflict"
    assert group_kind([a, rec(3, 10, 10, "ivory")]) == "duplicate"
    assert group_key([a, b]) == group_key([b, a])


@pytest.mark.parametrize(
    "labels, kind",
    [
        (["ivory", "ivory"], "duplicate"),
        (["ivory", "resin"], "conflict"),
        (["ivory", None], "duplicate"),  # an unlabelled copy of a labelled image
        ([None, "ivory"], "duplicate"),
        ([None, None], "duplicate"),
        (["ivory", None, "ivory"], "duplicate"),
        (["ivory", None, "resin"], "conflict"),  # no label never decides, two labels still do
    ],
)
def test_no_label_never_disagrees_with_a_label(labels, kind):
    assert group_kind([rec(i + 1, 10, 10, lab) for i, lab in enumerate(labels)]) == kind


def test_keeper_is_a_labelled_image_even_when_the_unlabelled_copy_is_larger():
    big_unlabelled, small_labelled = rec(1, 400, 400, None), rec(2, 100, 100, "ivory")
    assert keeper([big_unlabelled, small_labelled]).id == 2
    assert keeper([rec(1, 100, 100, None), rec(2, 200, 100, None)]).id == 2


def test_keeper_is_the_annotated_copy_when_labels_agree():
    # a class folder of photos and the same photos from a VOC export: keep the boxes
    folder_copy, with_boxes = rec(1, 100, 100), rec(2, 100, 100)
    with_boxes.annotated = True
    assert keeper([folder_copy, with_boxes]).id == 2
    bigger = rec(3, 400, 400)
    assert keeper([bigger, with_boxes]).id == 2  # the work counts before pixels
    assert keeper([bigger, folder_copy]).id == 3
    unlabelled_annotated = rec(4, 100, 100, None)
    unlabelled_annotated.annotated = True
    assert keeper([unlabelled_annotated, folder_copy]).id == 1  # a label first, as before


def smooth_noise(seed: int, size=(120, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.BICUBIC)


def test_mirror_hash_of_an_image_is_the_hash_of_its_mirror():
    img = smooth_noise(0)
    a, b = hash_image(img), hash_image(ImageOps.mirror(img))
    assert a.mirror_hash == b.hash and a.hash != a.mirror_hash


def test_encode_lists_unreadable_files_with_their_reason(tmp_path):
    good = tmp_path / "good.png"
    smooth_noise(1).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    progress = []
    r = encode([good, bad], workers=1, on_progress=lambda d, t: progress.append((d, t)))
    assert set(r.hashes) == {str(good)} and len(r.hashes[str(good)]) == 16
    assert r.unreadable == [(str(bad), "not an image (unrecognised format)")]
    assert progress[-1] == (2, 2)


def test_encode_in_worker_processes_gives_the_same_hashes(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"{i}.png"
        smooth_noise(i).save(p)
        paths.append(p)
    assert encode(paths, workers=2).hashes == encode(paths, workers=1).hashes


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(UnknownHashMethod, match="phash, dhash, whash, ahash"):
        encode([], method="md5")


def test_hex_round_trip():
    assert int(hex_to_uint64(["ffffffffffffffff"])[0]) == 2**64 - 1
