"""Pair search at millions: the multi-index search against the exact scan, faiss and usearch.

Synthetic 64-bit hashes (uniform) with 5 % planted near copies (0-8 bits flipped), max
distance 10 unless told. Each search runs in its own child process, so the peak memory
printed is that search's own. Where the exact scan runs (up to --exact-max hashes), the
multi-index pairs must equal its pairs; faiss's IndexBinaryMultiHash (the index the
pair search used before) runs up to --faiss-max when faiss is installed.

usearch (when installed) has no range query at a Hamming distance: its ``search`` takes
``count`` neighbours per query. It runs as a k-nearest-neighbour search (k =
--usearch-k) whose answers within the max distance are the pairs, in both of its modes:
its exact brute force (``usearch.index.search(..., exact=True)``, up to --usearch-max)
and its HNSW graph (``Index(metric="hamming", dtype="b1")``, up to --usearch-hnsw-max).
Its column gives the time and the share of the exact pairs it found (recall).

    .venv/bin/python benchmarks/dedup_index.py                       # 20k .. 1M
    .venv/bin/python benchmarks/dedup_index.py --sizes 10000000      # 10M (minutes)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def planted_hashes(n: int, seed: int = 1, fraction: float = 0.05) -> np.ndarray:
    """``n`` uniform 64-bit hashes; a ``fraction`` of them copies of another, 0-8 bits off."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    k = int(n * fraction)
    src, dst = rng.choice(n, k, replace=False), rng.choice(n, k, replace=False)
    flips = np.zeros(k, dtype=np.uint64)
    n_flips = rng.integers(0, 9, size=k)
    for f in range(8):
        bit = rng.integers(0, 64, size=k).astype(np.uint64)
        flips ^= np.where(n_flips > f, np.uint64(1) << bit, np.uint64(0))
    h[dst] = h[src] ^ flips
    return h


def _run(method: str, n: int, max_distance: int, out, usearch_k: int) -> None:
    h = planted_hashes(n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "index":  # compile (or load the cached kernels) outside the timing
        from workbench.dedup import multiindex

        multiindex.search(h[:64], h[:64], max_distance, symmetric=True)
    t0 = time.perf_counter()
    if method in ("usearch-exact", "usearch-hnsw"):
        pairs = _usearch_pairs(h, max_distance, method == "usearch-exact", usearch_k)
    elif method == "faiss":
        import faiss

        index = faiss.IndexBinaryMultiHash(64, 4, 16)
        index.nflip = max_distance // 4
        q8 = np.ascontiguousarray(h).view(np.uint8).reshape(-1, 8)
        index.add(q8)
        pairs = set()
        for s in range(0, n, 1 << 16):
            lims, _, labels = index.range_search(q8[s : s + (1 << 16)], max_distance + 1)
            for q in range(len(lims) - 1):
                for j in labels[lims[q] : lims[q + 1]].tolist():
                    if j != s + q:
                        pairs.add((min(s + q, j), max(s + q, j)))
    else:
        from workbench.dedup.search import find_pairs

        pairs = find_pairs(h, max_distance, method=method).as_set()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put((seconds, pairs if n <= 200_000 else len(pairs), peak / 1e6, (peak - base) / 1e6))


USEARCH_K = 16


def _usearch_pairs(h: np.ndarray, max_distance: int, exact: bool, k: int) -> set:
    """Pairs within ``max_distance`` among each hash's ``k`` nearest (usearch)."""
    from usearch.index import Index, search

    bits = np.ascontiguousarray(h).view(np.uint8).reshape(-1, 8)  # 64 bits packed
    k += 1  # the hash itself comes back too
    if exact:
        found = search(bits, bits, k, "hamming", exact=True)
    else:
        index = Index(ndim=64, metric="hamming", dtype="b1")
        index.add(np.arange(len(h), dtype=np.uint64), bits)
        found = index.search(bits, k)
    keys = found.keys.astype(np.int64)
    dist = found.distances
    q = np.repeat(np.arange(len(h)), keys.shape[1]).reshape(keys.shape)
    ok = (dist <= max_distance) & (keys != q) & (keys >= 0) & (keys < len(h))
    a, b = q[ok], keys[ok]
    return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))


def measure(method: str, n: int, max_distance: int, usearch_k: int = USEARCH_K):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_run, args=(method, n, max_distance, out, usearch_k))
    p.start()
    result = out.get()
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,100000,1000000")
    ap.add_argument("--max-distance", type=int, default=10)
    ap.add_argument("--exact-max", type=int, default=100_000, help="largest size scanned")
    ap.add_argument("--faiss-max", type=int, default=100_000, help="largest size faiss runs")
    ap.add_argument("--usearch-k", type=int, default=USEARCH_K, help="neighbours per hash")
    ap.add_argument(
        "--usearch-max", type=int, default=20_000, help="largest exact usearch (memory ~n^2)"
    )
    ap.add_argument("--usearch-hnsw-max", type=int, default=1_000_000, help="largest HNSW")
    args = ap.parse_args()
    try:
        import usearch  # noqa: F401

        have_usearch = True
    except ImportError:
        have_usearch = False
    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
    rows = []
    print(f"max distance {args.max_distance}; each search in its own process", flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        t_idx, p_idx, rss_idx, _ = measure("index", n, args.max_distance)
        count = p_idx if isinstance(p_idx, int) else len(p_idx)
        row = {"n": n, "index": t_idx, "rss": rss_idx, "pairs": count}
        print(
            f"  {n:>9,} multi-index {t_idx:8.2f} s  {count:,} pairs  peak {rss_idx:.2f} GB",
            flush=True,
        )
        if n <= args.exact_max:
            t_ex, p_ex, _, _ = measure("exact", n, args.max_distance)
            row.update(exact=t_ex, same=p_ex == p_idx)
            print(f"  {n:>9,} exact scan  {t_ex:8.2f} s  same pairs: {p_ex == p_idx}", flush=True)
        if have_faiss and n <= args.faiss_max:
            t_fa, p_fa, _, _ = measure("faiss", n, args.max_distance)
            row.update(faiss=t_fa, faiss_same=p_fa == p_idx)
            print(f"  {n:>9,} faiss MIH   {t_fa:8.2f} s  same pairs: {p_fa == p_idx}", flush=True)
        for method, cap in (
            ("usearch-exact", args.usearch_max),
            ("usearch-hnsw", args.usearch_hnsw_max),
        ):
            if not have_usearch or n > cap:
                continue
            t_us, p_us, rss_us, _ = measure(method, n, args.max_distance, args.usearch_k)
            if isinstance(p_idx, set):
                recall = len(p_us & p_idx) / max(1, len(p_idx))
                extra = len(p_us - p_idx)
            else:  # above 200k only counts come back
                recall, extra = p_us / max(1, p_idx), 0
            row[method] = (t_us, recall, rss_us)
            print(
                f"  {n:>9,} {method:13} {t_us:8.2f} s  recall {recall:.4f}"
                f" (k={args.usearch_k}; {extra} pairs beyond exact)  peak {rss_us:.2f} GB",
                flush=True,
            )
        rows.append(row)
    print()
    print(
        "| hashes | exact scan | faiss IndexBinaryMultiHash | multi-index (ours) | same pairs "
        "| exact / ours | faiss / ours | peak memory (ours) "
        f"| usearch exact, k={args.usearch_k}: time, recall | usearch HNSW, k={args.usearch_k}: time, recall, memory |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ex = f"{r['exact']:.2f} s" if "exact" in r else "-"
        fa = f"{r['faiss']:.2f} s" if "faiss" in r else "-"
        same = [str(r[k]) for k in ("same", "faiss_same") if k in r]
        print(
            f"| {r['n']:,} | {ex} | {fa} | {r['index']:.2f} s | {', '.join(same) or '-'} "
            f"| {(r['exact'] / r['index']) if 'exact' in r else float('nan'):.1f}x "
            f"| {(r['faiss'] / r['index']) if 'faiss' in r else float('nan'):.1f}x "
            f"| {r['rss']:.2f} GB "
            f"| {_us(r, 'usearch-exact', False)} | {_us(r, 'usearch-hnsw', True)} |"
        )


def _us(row: dict, method: str, memory: bool) -> str:
    if method not in row:
        return "-"
    t, recall, rss = row[method]
    return f"{t:.2f} s, {recall:.4f}" + (f", {rss:.2f} GB" if memory else "")


if __name__ == "__main__":
    main()
