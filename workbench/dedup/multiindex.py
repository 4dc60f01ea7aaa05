"""Exact Hamming range search by multi-index hashing (Norouzi et al., CVPR 2012), compiled.

The 64 bits are cut into ``m`` blocks. Two hashes within ``d`` bits differ in at most
``d // m`` bits on at least one block (pigeonhole), so probing, for every query and
block, each bucket within ``d // m`` flips of the query's block value finds every pair;
each candidate is checked at the full distance. A pair is kept only at the first block
where it is that close, so it comes out once without a set of seen pairs. The layout
(how many blocks) is chosen per call from a cost model over the number of hashes.

The kernel is compiled with numba (an extra: ``pip install workbench[fast]``) on its
first call in a process (cached on disk after). ``search.py`` falls back to its exact
blocked search when numba is missing or the cost model says a scan is cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

BITS = 64
# Bucket tables hold 2**bits offsets per block: 2**24 x 8 B = 128 MB is the most we build.
MAX_BLOCK_BITS = 24
# Cost model, in units of one candidate check (XOR, popcount, compare on contiguous
# memory): walking one pair of buckets costs a random table access or two, and one pair
# of the NumPy scan costs a few checks (temporaries, no early exit). Estimates; the
# crossover is measured in benchmarks/dedup_search.py.
VISIT_COST = 4.0
SCAN_COST = 3.0


def available() -> bool:
    """Whether numba imports (the compiled multi-index search can run)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Layout:
    widths: tuple[int, ...]  # bits per block, summing to 64
    radius: int  # flips probed per block

    @property
    def blocks(self) -> int:
        return len(self.widths)

    def probes(self) -> int:
        return sum(sum(comb(w, k) for k in range(self.radius + 1)) for w in self.widths)

    def cost(self, n: int) -> float:
        """Expected work of a search over ``n`` uniform hashes: for every block and flip
        mask, a walk over all bucket pairs plus the candidates they hold."""
        return float(
            sum(
                sum(comb(w, k) for k in range(self.radius + 1)) * (2**w * VISIT_COST + n * n / 2**w)
                for w in self.widths
            )
        )


def layouts(max_distance: int) -> list[Layout]:
    """Every block count whose widest block fits a bucket table."""
    out = []
    for m in range(1, BITS + 1):
        base, extra = divmod(BITS, m)
        widths = tuple(base + 1 if k < extra else base for k in range(m))
        if max(widths) > MAX_BLOCK_BITS:
            continue
        out.append(Layout(widths, max_distance // m))
    return out


def best_layout(n: int, max_distance: int) -> Layout:
    return min(layouts(max_distance), key=lambda lay: lay.cost(n))


def cheaper_than_scan(n: int, max_distance: int) -> bool:
    """Whether the multi-index search is expected to beat comparing all pairs."""
    return best_layout(n, max_distance).cost(n) < SCAN_COST * n * n / 2


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set."""
    from itertools import combinations

    masks = [0]
    for k in range(1, min(radius, width) + 1):
        for bits in combinations(range(width), k):
            v = 0
            for b in bits:
                v |= 1 << b
            masks.append(v)
    return np.array(masks, dtype=np.uint64)


def _table(values: np.ndarray, shift: int, width: int):
    """``values`` ordered by their block key, their original indices, and the bucket
    offsets (``offsets[k]:offsets[k + 1]`` holds key ``k``)."""
    keys = ((values >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
    order = np.argsort(keys, kind="stable")
    offsets = np.zeros(2**width + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=2**width), out=offsets[1:])
    return values[order], order.astype(np.int64), offsets


def search(
    hashes: np.ndarray,
    queries: np.ndarray,
    max_distance: int,
    symmetric: bool,
    layout: Layout | None = None,
):
    """Pairs ``(q, j)`` with ``popcount(queries[q] ^ hashes[j]) <= max_distance`` and
    ``q != j``; with ``symmetric`` (the queries are the hashes) each unordered pair once,
    as ``q < j``. Returns two int64 arrays; each pair comes out once."""
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    q = np.ascontiguousarray(queries, dtype=np.uint64)
    lay = layout or best_layout(len(h), max_distance)
    kernels = _kernels()
    found_q, found_j = [], []
    shifts = np.cumsum((0,) + lay.widths[:-1]).astype(np.uint64)
    wmasks = np.array([(1 << w) - 1 for w in lay.widths], dtype=np.uint64)
    for blk, width in enumerate(lay.widths):
        shift = int(shifts[blk])
        b_tab = _table(h, shift, width)
        a_tab = b_tab if symmetric else _table(q, shift, width)
        args = (
            *a_tab,
            *b_tab,
            shifts[:blk].copy(),
            wmasks[:blk].copy(),
            _flip_masks(width, lay.radius),
            np.uint64(lay.radius),
            np.uint64(max_distance),
            symmetric,
        )
        counts = np.zeros(2**width, dtype=np.int64)
        kernels.count(*args, counts)
        # Pairs are rare: the second pass walks only the buckets that have some.
        which = np.flatnonzero(counts)
        start = np.zeros(len(which) + 1, dtype=np.int64)
        np.cumsum(counts[which], out=start[1:])
        out_q = np.empty(int(start[-1]), dtype=np.int64)
        out_j = np.empty(int(start[-1]), dtype=np.int64)
        kernels.fill(*args, which, start, out_q, out_j)
        if symmetric:
            out_q, out_j = np.minimum(out_q, out_j), np.maximum(out_q, out_j)
        found_q.append(out_q)
        found_j.append(out_j)
    return np.concatenate(found_q), np.concatenate(found_j)


def _kernels():
    """The compiled count and fill kernels (numba compiles them on first use and caches
    the machine code on disk)."""
    from . import mih_kernels

    return mih_kernels
