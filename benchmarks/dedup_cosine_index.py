"""CNN pair search at scale: `wb dedup`'s clustered index against the exact product and a
usearch HNSW index, side by side.

`wb dedup --method cnn` pairs images whose embeddings (1280 numbers, L2-normalised) have
cosine >= --min-cosine. Below ``INDEX_FROM`` embeddings it takes an exact blocked matrix
product (n^2 x 1280 multiply-adds); from there, the clustered index
(``embeddings.clustered_cosine_pairs``: faiss k-means lists, each embedding compared
by matrix products with the members of its nearest lists). ``hnsw_cosine_pairs`` here is
the alternative that was measured and not taken: a usearch HNSW index gives each vector
its ``INDEX_K`` nearest neighbours. Both indexes keep a pair only on its exact float32
cosine, so every pair they return is true and all they can do is miss some. This script
runs the three on the same synthetic embeddings and prints the time, the peak memory and
each index's recall and precision against the exact pairs; where the exact product is too
long (--exact-max), the share of the planted copies each index paired with their source.
The HNSW index is not used by `wb`: at 1M it paired only 66 % of them (docs/dedup.md).

The embeddings are built to look like real ones rather than like noise: images come in
"scenes" (a shared direction, so two photos of one scene have cosine ~0.5 and of two
scenes ~0.16), 5 % of the images have planted copies at cosine 0.80-0.99 to their source,
in families of 1 to 12 copies (the quality benchmark plants 10 kinds per photo). Each
search runs in its own child process, and its peak memory is counted from the moment the
embeddings are built (they are included: 5.1 GB at 1M).

    .venv/bin/python benchmarks/dedup_cosine_index.py                  # 20k, 100k
    .venv/bin/python benchmarks/dedup_cosine_index.py --sizes 1000000 --exact-max 0 --hnsw-max 0
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.dedup.embeddings import CosinePairs  # noqa: E402

DIM = 1280


def planted_embeddings(n: int, seed: int = 1, fraction: float = 0.05):
    """``n`` unit vectors (scenes of ~50 images, plus families of near copies) and the
    planted (source, copy) pairs, ``i < j``."""
    rng = np.random.default_rng(seed)
    n_scenes = max(1, n // 50)
    scenes = rng.standard_normal((n_scenes, DIM), dtype=np.float32)
    scenes /= np.linalg.norm(scenes, axis=1, keepdims=True)
    common = rng.standard_normal(DIM, dtype=np.float32)  # all photos share a little
    common /= np.linalg.norm(common)
    v = np.empty((n, DIM), np.float32)
    step = 65_536
    for s in range(0, n, step):
        m = min(n, s + step) - s
        noise = rng.standard_normal((m, DIM), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v[s : s + m] = 0.4 * common + 0.6 * scenes[rng.integers(0, n_scenes, m)] + 0.7 * noise
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    # families: a source and 1-12 copies, each at cosine 0.80-0.99 to the source
    budget = int(n * fraction)
    order = rng.permutation(n)
    at = 0
    planted = []
    while budget > 0 and at + 13 < n:
        size = min(budget, int(rng.integers(1, 13)))
        src, copies = order[at], order[at + 1 : at + 1 + size]
        at += 1 + size
        budget -= size
        target = rng.uniform(0.80, 0.99, size).astype(np.float32)
        noise = rng.standard_normal((size, DIM), dtype=np.float32)
        noise -= (noise @ v[src])[:, None] * v[src]  # orthogonal to the source
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v[copies] = target[:, None] * v[src] + np.sqrt(1 - target**2)[:, None] * noise
        planted += [(min(src, c), max(src, c)) for c in copies.tolist()]
    return v, set(planted)


INDEX_K = 32  # neighbours per vector asked of the index (a copy family larger than this
# is still joined through its members' own neighbours)
INDEX_EXPANSION = 64  # HNSW search and insertion depth (ef)
INDEX_CONNECTIVITY = 16  # links per node (M)
# int8 vectors in the index (4x less memory, ~5x faster than float32 here); its distances
# only choose candidates within INDEX_SLACK of the threshold, the float32 cosine decides
INDEX_DTYPE = "i8"
INDEX_SLACK = 0.05
BATCH = 8192


def hnsw_cosine_pairs(v: np.ndarray, min_cosine: float) -> CosinePairs:
    """Pairs with cosine >= ``min_cosine`` among each row's INDEX_K nearest in a usearch
    HNSW index, best first, each checked in float32 (unit rows expected)."""
    from usearch.index import Index

    v = np.ascontiguousarray(v, dtype=np.float32)
    n, dim = v.shape
    index = Index(
        ndim=dim,
        metric="cos",
        dtype=INDEX_DTYPE,
        connectivity=INDEX_CONNECTIVITY,
        expansion_add=INDEX_EXPANSION,
        expansion_search=INDEX_EXPANSION,
    )
    for start in range(0, n, BATCH):  # in batches, as measured in docs/dedup.md
        stop = min(n, start + BATCH)
        index.add(np.arange(start, stop, dtype=np.uint64), v[start:stop])
    k = min(n, INDEX_K + 1)  # the row itself comes back too
    ii, jj, ss = [], [], []
    for start in range(0, n, BATCH):
        found = index.search(v[start : start + BATCH], k)
        keys = found.keys.astype(np.int64)
        rows = np.broadcast_to(np.arange(start, start + len(keys))[:, None], keys.shape)
        ok = (keys >= 0) & (keys < n) & (keys != rows)
        ok &= found.distances <= (1.0 - min_cosine) + INDEX_SLACK  # 1 - cosine, int8
        a, b = np.minimum(rows[ok], keys[ok]), np.maximum(rows[ok], keys[ok])
        sims = np.einsum("ij,ij->i", v[a], v[b])
        keep = sims >= min_cosine - 1e-6
        ii.append(a[keep])
        jj.append(b[keep])
        ss.append(sims[keep].astype(np.float32))
    i, j, s = np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)
    _, first = np.unique(i * n + j, return_index=True)  # found from both ends: once
    i, j, s = i[first], j[first], s[first]
    order = np.lexsort((j, i, -s))
    return CosinePairs(i[order], j[order], s[order])


def _reset_peak() -> None:
    """Linux: start the peak resident size (VmHWM) again from the current one."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run(method: str, n: int, min_cosine: float, out) -> None:
    from workbench.dedup.embeddings import find_cosine_pairs

    v, planted = planted_embeddings(n)
    gc.collect()
    _reset_peak()  # the search's own peak (the vectors included), not the generator's
    t0 = time.perf_counter()
    if method == "hnsw":
        p = hnsw_cosine_pairs(v, min_cosine)
    else:
        p = find_cosine_pairs(v, min_cosine, index=method == "clustered")
    seconds = time.perf_counter() - t0
    peak = _peak_kb()
    pairs = set(zip(p.i.tolist(), p.j.tolist()))
    planted_found = len(planted & pairs) / max(1, len(planted))
    out.put((seconds, pairs, peak / 1e6, planted_found))


def measure(method: str, n: int, min_cosine: float):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_run, args=(method, n, min_cosine, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


METHODS = {"exact": "exact product", "clustered": "clustered index", "hnsw": "HNSW index"}


def main() -> None:
    from workbench.dedup.embeddings import DEFAULT_MIN_COSINE, INDEX_PROBES

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--min-cosine", type=float, default=DEFAULT_MIN_COSINE)
    ap.add_argument("--exact-max", type=int, default=100_000, help="largest exact product")
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="largest HNSW run")
    args = ap.parse_args()
    rows = []
    print(
        f"min cosine {args.min_cosine}; clustered index: 8 sqrt(n) lists, {INDEX_PROBES} probes; "
        f"HNSW k={INDEX_K}; each search in its own process"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        row = {"n": n}
        limits = {"exact": args.exact_max, "clustered": n, "hnsw": args.hnsw_max}
        for method in ("clustered", "hnsw", "exact"):
            if n > limits[method]:
                continue
            seconds, pairs, rss, planted = measure(method, n, args.min_cosine)
            row[method] = (seconds, pairs, rss, planted)
            print(
                f"  {n:>9,} {METHODS[method]:<16} {seconds:8.2f} s  {len(pairs):,} pairs"
                f"  peak {rss:.2f} GB  planted copies found {planted:.4f}",
                flush=True,
            )
        rows.append(row)
    print()
    print(
        "| embeddings | exact product | clustered index (wb) | HNSW index | exact / clustered "
        "| exact pairs | clustered: recall, precision | HNSW: recall, precision "
        "| planted copies found: clustered, HNSW | peak memory: exact, clustered, HNSW |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    for r in rows:
        print(table_row(r))


def _quality(r: dict, method: str) -> str:
    """Recall and precision of ``method``'s pairs against the exact product's."""
    if method not in r or "exact" not in r:
        return "-"
    got, exact = r[method][1], r["exact"][1]
    both = len(got & exact)
    return f"{both / max(1, len(exact)):.4f}, {both / max(1, len(got)):.4f}"


def table_row(r: dict) -> str:
    def seconds(m):
        return f"{r[m][0]:.1f} s" if m in r else "-"

    def planted(m):
        return f"{r[m][3]:.4f}" if m in r else "-"

    def memory(m):
        return f"{r[m][2]:.2f}" if m in r else "-"

    exact = r.get("exact")
    ratio = f"{exact[0] / r['clustered'][0]:.1f}x" if exact else "-"
    pairs = f"{len(exact[1]):,}" if exact else "-"
    return (
        f"| {r['n']:,} | {seconds('exact')} | {seconds('clustered')} | {seconds('hnsw')} "
        f"| {ratio} | {pairs} | {_quality(r, 'clustered')} | {_quality(r, 'hnsw')} "
        f"| {planted('clustered')}, {planted('hnsw')} "
        f"| {memory('exact')}, {memory('clustered')}, {memory('hnsw')} GB |"
    )


if __name__ == "__main__":
    main()
