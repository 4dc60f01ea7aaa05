"""The compiled loops of ``multiindex.search`` (numba). Imported only when numba is
installed and a search is large enough to use them; see ``multiindex.py``.

The loops walk bucket pairs, not queries: for one block and one flip mask, every entry
of bucket ``b`` of the queries' table meets every entry of bucket ``b ^ mask`` of the
hashes' table. Both are short runs of contiguous memory, so each probe costs one pair of
table lookups per bucket instead of one random memory access per query.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    """The CPU's population count of a uint64 (LLVM's ctpop)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@numba.njit(inline="always", cache=True)
def visit(
    bkt,
    a_hs,
    a_ids,
    a_off,
    b_hs,
    b_ids,
    b_off,
    earlier_shifts,
    earlier_masks,
    masks,
    radius,
    max_d,
    symmetric,
    out_i,
    out_j,
    at,
):
    """The pairs of bucket ``bkt``: counted, and written to ``out_*[at:]`` when ``at >= 0``."""
    a0, a1 = a_off[bkt], a_off[bkt + 1]
    if a0 == a1:
        return 0
    found = 0
    for t in range(masks.shape[0]):
        other = bkt ^ np.int64(masks[t])
        if symmetric and other < bkt:
            continue  # the pair of buckets is walked from its smaller end
        b0, b1 = b_off[other], b_off[other + 1]
        for p in range(a0, a1):
            x0 = a_hs[p]
            start = p + 1 if symmetric and other == bkt else b0
            for r in range(start, b1):
                x = x0 ^ b_hs[r]
                if popcount(x) > max_d:
                    continue
                first = True  # keep the pair only at its first block within the radius
                for k in range(earlier_shifts.shape[0]):
                    if popcount((x >> earlier_shifts[k]) & earlier_masks[k]) <= radius:
                        first = False
                        break
                if not first:
                    continue
                i, j = a_ids[p], b_ids[r]
                if i == j:
                    continue  # a query against its own image
                if at >= 0:
                    out_i[at + found] = i
                    out_j[at + found] = j
                found += 1
    return found


@numba.njit(parallel=True, cache=True)
def count(
    a_hs,
    a_ids,
    a_off,
    b_hs,
    b_ids,
    b_off,
    earlier_shifts,
    earlier_masks,
    masks,
    radius,
    max_d,
    symmetric,
    counts,
):
    none = np.empty(0, dtype=np.int64)
    for bkt in numba.prange(a_off.shape[0] - 1):
        counts[bkt] = visit(
            bkt,
            a_hs,
            a_ids,
            a_off,
            b_hs,
            b_ids,
            b_off,
            earlier_shifts,
            earlier_masks,
            masks,
            radius,
            max_d,
            symmetric,
            none,
            none,
            -1,
        )


@numba.njit(parallel=True, cache=True)
def fill(
    a_hs,
    a_ids,
    a_off,
    b_hs,
    b_ids,
    b_off,
    earlier_shifts,
    earlier_masks,
    masks,
    radius,
    max_d,
    symmetric,
    which,
    start,
    out_i,
    out_j,
):
    """Write the pairs of the buckets ``which`` (those ``count`` found pairs in)."""
    for k in numba.prange(which.shape[0]):
        visit(
            which[k],
            a_hs,
            a_ids,
            a_off,
            b_hs,
            b_ids,
            b_off,
            earlier_shifts,
            earlier_masks,
            masks,
            radius,
            max_d,
            symmetric,
            out_i,
            out_j,
            start[k],
        )
