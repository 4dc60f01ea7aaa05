"""Pair search over 64-bit hashes: vectorised XOR + popcount, chunked to bound memory.

imagededup's ``find_duplicates(encoding_map=...)`` rebuilds Python lists of every hash
for each query; here all hashes sit in one ``uint64`` array and each block of rows is
compared with every later hash at once (``np.bitwise_count``). See
benchmarks/dedup_search.py for the measured difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .hashing import hex_to_uint64

# Elements per block (rows x columns): 16 M x (8 B xor + 1 B count) ~ 150 MB at most.
BLOCK_ELEMENTS = 1 << 24
MAX_BITS = 64
# The multi-index search (``multiindex.py``, compiled with numba) is used from this many
# hashes up, at most this distance, and where its cost model expects it to beat the scan;
# the compiled kernels take ~3 s to load in a fresh process (measured under load), the
# exact scan 1.3 s at 20k hashes and ~4x that at twice as many (docs/dedup.md).
INDEX_MIN_HASHES = 30_000
INDEX_MAX_DISTANCE = 16


@dataclass
class Pairs:
    """Pairs ``(i[k], j[k])`` with ``i < j`` (indices into the hashes given), their
    Hamming ``distance`` and whether the match was against the other's mirror."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray
    mirrored: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def __iter__(self) -> Iterator[tuple[int, int, int, bool]]:
        yield from zip(
            self.i.tolist(), self.j.tolist(), self.distance.tolist(), self.mirrored.tolist()
        )

    def as_set(self) -> set[tuple[int, int]]:
        return set(zip(self.i.tolist(), self.j.tolist()))

    @classmethod
    def empty(cls) -> Pairs:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=bool))


def check_max_distance(max_distance: int) -> int:
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)):
        raise TypeError(
            f"max_distance must be an int between 0 and {MAX_BITS}, "
            f"got {type(max_distance).__name__}"
        )
    if not 0 <= max_distance <= MAX_BITS:
        raise ValueError(f"max_distance must be between 0 and {MAX_BITS}, got {max_distance}")
    return int(max_distance)


def _as_uint64(hashes) -> np.ndarray:
    if isinstance(hashes, np.ndarray):
        return hashes.astype(np.uint64, copy=False)
    return hex_to_uint64(list(hashes))


def index_available() -> bool:
    """Whether the multi-index search can run (numba imports); without it the search is exact."""
    from . import multiindex

    return multiindex.available()


def choose_method(n: int, max_distance: int) -> str:
    """``"index"`` where it is measured faster (many hashes, small distance), else ``"exact"``."""
    if n >= INDEX_MIN_HASHES and max_distance <= INDEX_MAX_DISTANCE and index_available():
        from . import multiindex

        if multiindex.cheaper_than_scan(n, max_distance):
            return "index"
    return "exact"


def find_pairs(
    hashes: Sequence[str] | np.ndarray,
    max_distance: int,
    mirror_hashes: Sequence[str] | np.ndarray | None = None,
    block_elements: int = BLOCK_ELEMENTS,
    method: str = "auto",
) -> Pairs:
    """All pairs ``i < j`` whose hashes differ in at most ``max_distance`` bits.

    With ``mirror_hashes`` (the hash of each image's mirror), a pair's distance is the
    smallest of hash-hash, hash-mirror and mirror-hash, so mirrored copies are found.
    ``method``: ``"exact"`` (all pairs, chunked), ``"index"`` (multi-index hashing,
    the same pairs) or ``"auto"`` (:func:`choose_method`).

    >>> p = find_pairs(["ff00ff00ff00ff00", "ff00ff00ff00ff01", "0123456789abcdef"], 2)
    >>> list(p)
    [(0, 1, 1, False)]
    """
    max_distance = check_max_distance(max_distance)
    if method not in ("auto", "exact", "index"):
        raise ValueError(f"method must be 'auto', 'exact' or 'index', got {method!r}")
    h = _as_uint64(hashes)
    m = None if mirror_hashes is None else _as_uint64(mirror_hashes)
    if m is not None and len(m) != len(h):
        raise ValueError(f"{len(h)} hashes but {len(m)} mirror hashes")
    n = len(h)
    if n < 2:
        return Pairs.empty()
    if method == "auto":
        method = choose_method(n, max_distance)
    if method == "index":
        return _index_pairs(h, max_distance, m)
    out_i, out_j, out_d, out_m = [], [], [], []
    start = 0
    while start < n - 1:
        cols = n - start  # compare rows [start, stop) with columns >= start
        rows = max(1, min(n - 1 - start, block_elements // cols))
        stop = start + rows
        d = np.bitwise_count(h[start:stop, None] ^ h[None, start:])
        mirrored = None
        if m is not None:
            dm = np.minimum(
                np.bitwise_count(h[start:stop, None] ^ m[None, start:]),
                np.bitwise_count(m[start:stop, None] ^ h[None, start:]),
            )
            mirrored = dm < d
            d = np.minimum(d, dm)
        # keep the strict upper triangle: column index (start + c) > row index (start + r)
        r, c = np.nonzero(d <= max_distance)
        upper = c > r
        r, c = r[upper], c[upper]
        out_i.append(r + start)
        out_j.append(c + start)
        out_d.append(d[r, c])
        out_m.append(mirrored[r, c] if mirrored is not None else np.zeros(len(r), dtype=bool))
        start = stop
    return Pairs(
        np.concatenate(out_i).astype(np.int64),
        np.concatenate(out_j).astype(np.int64),
        np.concatenate(out_d).astype(np.uint8),
        np.concatenate(out_m),
    )


def _index_pairs(h: np.ndarray, max_distance: int, m: np.ndarray | None) -> Pairs:
    """The pairs of :func:`find_pairs` from the multi-index search (``multiindex.py``).

    Queries are the hashes (pairs i < j) and the mirrors (which find hash-mirror and,
    queried from the other side, mirror-hash pairs); distances are recomputed here.
    """
    from . import multiindex

    qi, j = multiindex.search(h, h, max_distance, symmetric=True)
    found_i, found_j = [qi], [j]
    if m is not None:
        mq, mj = multiindex.search(h, m, max_distance, symmetric=False)
        found_i.append(np.minimum(mq, mj))
        found_j.append(np.maximum(mq, mj))
    n = len(h)
    key = np.unique(np.concatenate(found_i) * n + np.concatenate(found_j))
    if len(key) == 0:
        return Pairs.empty()
    i, j = key // n, key % n
    d = np.bitwise_count(h[i] ^ h[j])
    if m is None:
        mirrored = np.zeros(len(i), dtype=bool)
    else:
        dm = np.minimum(np.bitwise_count(h[i] ^ m[j]), np.bitwise_count(m[i] ^ h[j]))
        mirrored = dm < d
        d = np.minimum(d, dm)
    keep = d <= max_distance
    return Pairs(i[keep], j[keep], d[keep].astype(np.uint8), mirrored[keep])


def distances(
    hashes_a: np.ndarray,
    hashes_b: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    mirror_b: np.ndarray | None = None,
    mirror_a: np.ndarray | None = None,
) -> np.ndarray:
    """Distances of given pairs (``hashes_a[i]`` vs ``hashes_b[j]``), mirrors included."""
    d = np.bitwise_count(hashes_a[i] ^ hashes_b[j])
    if mirror_b is not None:
        d = np.minimum(d, np.bitwise_count(hashes_a[i] ^ mirror_b[j]))
    if mirror_a is not None:
        d = np.minimum(d, np.bitwise_count(mirror_a[i] ^ hashes_b[j]))
    return d
