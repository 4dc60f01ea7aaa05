"""The multi-index search finds exactly the pairs of the all-pairs search."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.dedup import multiindex, search
from workbench.dedup.search import choose_method, find_pairs

pytest.importorskip("numba", reason="the multi-index search needs numba (a dependency)")


def planted(n: int, seed: int, flips: int) -> np.ndarray:
    """Random 64-bit hashes, a tenth of them copies of another with 0..flips bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    src = rng.choice(n, size=n // 10, replace=False)
    dst = rng.choice(n, size=n // 10, replace=False)
    for s, d in zip(src, dst):
        v = int(h[s])
        for bit in rng.choice(64, size=int(rng.integers(0, min(flips, 64) + 1)), replace=False):
            v ^= 1 << int(bit)
        h[d] = np.uint64(v)
    return h


def same(a, b) -> None:
    for name in ("i", "j", "distance", "mirrored"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize(
    ("n", "max_distance"), [(10_000, 0), (10_000, 3), (10_000, 10), (10_000, 16), (600, 64)]
)
def test_index_equals_exact(n, max_distance):
    h = planted(n, seed=max_distance, flips=max_distance + 2)
    exact = find_pairs(h, max_distance, method="exact")
    index = find_pairs(h, max_distance, method="index")
    assert len(exact) > n // 40  # planted pairs are there to be found
    same(exact, index)


@pytest.mark.parametrize("max_distance", [2, 10, 16])
def test_index_equals_exact_with_mirrors(max_distance):
    h = planted(8_000, seed=7, flips=max_distance)
    rng = np.random.default_rng(1)
    m = rng.integers(0, 2**64, size=len(h), dtype=np.uint64)
    # plant mirrored copies: some image's mirror equals another's hash, a few bits off
    for s, d in zip(rng.choice(len(h), 300, replace=False), rng.choice(len(h), 300, replace=False)):
        m[d] = h[s] ^ np.uint64(1 << int(rng.integers(0, 64)))
    exact = find_pairs(h, max_distance, mirror_hashes=m, method="exact")
    index = find_pairs(h, max_distance, mirror_hashes=m, method="index")
    assert exact.mirrored.sum() > 100
    same(exact, index)


@pytest.mark.parametrize("widths", [(16, 16, 16, 16), (13, 13, 13, 13, 12), (8,) * 8, (22, 21, 21)])
def test_every_block_layout_finds_the_same_pairs(widths):
    h = planted(4_000, seed=3, flips=9)
    exact = find_pairs(h, 9, method="exact").as_set()
    layout = multiindex.Layout(widths, 9 // len(widths))
    qi, j = multiindex.search(h, h, 9, symmetric=True, layout=layout)
    assert len(qi) == len(set(zip(qi.tolist(), j.tolist())))  # each pair once
    assert set(zip(qi.tolist(), j.tolist())) == exact


def test_the_cost_model_picks_cache_sized_blocks():
    layout = multiindex.best_layout(10**6, 10)
    assert max(layout.widths) <= multiindex.MAX_BLOCK_BITS
    assert sum(layout.widths) == 64 and layout.radius == 10 // layout.blocks
    assert multiindex.cheaper_than_scan(10**6, 10)
    assert not multiindex.cheaper_than_scan(50, 16)  # the tables cost more than the scan


def test_auto_picks_index_only_where_it_wins(monkeypatch):
    assert choose_method(search.INDEX_MIN_HASHES, 10) == "index"
    assert choose_method(search.INDEX_MIN_HASHES - 1, 10) == "exact"
    assert choose_method(10**6, search.INDEX_MAX_DISTANCE + 1) == "exact"
    monkeypatch.setattr(search, "index_available", lambda: False)
    assert choose_method(10**6, 10) == "exact"


def test_fallback_without_numba_gives_the_same_pairs(monkeypatch):
    h = planted(search.INDEX_MIN_HASHES, seed=5, flips=4)
    with_index = find_pairs(h, 4)
    monkeypatch.setattr(search, "index_available", lambda: False)
    same(with_index, find_pairs(h, 4))


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="'auto', 'exact' or 'index'"):
        find_pairs(["ff00ff00ff00ff00", "ff00ff00ff00ff01"], 2, method="fast")
