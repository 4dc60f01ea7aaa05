"""Pair search speed: ours (NumPy XOR + popcount) against imagededup's find_duplicates.

Synthetic 64-bit hashes with planted near pairs (a copy of a hash with 0-8 bits
flipped). Both searches get the same hashes and threshold; the pair sets must be
equal. Then our search alone at 10k, 40k and 160k hashes.

    .venv/bin/python benchmarks/dedup_search.py --quick   # imagededup at 10k (~25 s)
    .venv/bin/python benchmarks/dedup_search.py           # imagededup at 40k (minutes)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.dedup.search import find_pairs  # noqa: E402


def synthetic_hashes(n: int, seed: int = 0, planted_fraction: float = 0.05) -> list[str]:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(
        2
    ) + rng.integers(0, 2, size=n, dtype=np.int64).astype(np.uint64)
    n_planted = int(n * planted_fraction)
    src = rng.choice(n, size=n_planted, replace=False)
    dst = rng.choice(n, size=n_planted, replace=False)
    for s, d in zip(src, dst):
        if s == d:
            continue
        v = int(h[s])
        for bit in rng.choice(64, size=int(rng.integers(0, 9)), replace=False):
            v ^= 1 << int(bit)
        h[d] = np.uint64(v)
    return [f"{int(v):016x}" for v in h]


def imagededup_pairs(hashes: list[str], max_distance: int) -> tuple[set, float]:
    from imagededup.methods import PHash

    names = [f"img{i}" for i in range(len(hashes))]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = PHash(verbose=False).find_duplicates(
            encoding_map=dict(zip(names, hashes)), max_distance_threshold=max_distance
        )
    dt = time.perf_counter() - t0
    pairs = {
        (min(int(a[3:]), int(b[3:])), max(int(a[3:]), int(b[3:])))
        for a, dups in result.items()
        for b in dups
    }
    return pairs, dt


def ours(hashes: list[str], max_distance: int, mirror: bool = False) -> tuple[set, float]:
    t0 = time.perf_counter()
    arr = np.array([int(x, 16) for x in hashes], dtype=np.uint64)
    p = find_pairs(arr, max_distance, mirror_hashes=arr[::-1].copy() if mirror else None)
    return p.as_set(), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="compare with imagededup at 10k, not 40k")
    ap.add_argument("--max-distance", type=int, default=10)
    ap.add_argument("--sizes", default="10000,40000,160000")
    args = ap.parse_args()
    n = 10_000 if args.quick else 40_000
    hashes = synthetic_hashes(n)
    ours(hashes[:2000], args.max_distance)  # warm up memory and NumPy
    mine, t_ours = ours(hashes, args.max_distance)
    print(f"{n} hashes, max distance {args.max_distance}: ours {t_ours:.2f} s, {len(mine)} pairs")
    theirs, t_theirs = imagededup_pairs(hashes, args.max_distance)
    print(f"imagededup find_duplicates(encoding_map=...): {t_theirs:.2f} s, {len(theirs)} pairs")
    print(f"same pairs: {mine == theirs}   speed-up: {t_theirs / t_ours:.1f}x")
    if mine != theirs:
        print(
            f"  only ours: {sorted(mine - theirs)[:5]}  only imagededup: {sorted(theirs - mine)[:5]}"
        )
    print("our search alone (pairs found; with mirror hashes it does 3 comparisons per pair):")
    for size in (int(s) for s in args.sizes.split(",")):
        hs = synthetic_hashes(size, seed=1)
        pairs, t = ours(hs, args.max_distance)
        _, tm = ours(hs, args.max_distance, mirror=True)
        print(f"  {size:>7} hashes: {t:7.2f} s ({len(pairs)} pairs)   with mirrors {tm:7.2f} s")


if __name__ == "__main__":
    main()
