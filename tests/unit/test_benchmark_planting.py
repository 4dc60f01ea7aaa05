"""The pair-search benchmarks (benchmarks/dedup_cosine_index.py, benchmarks/dedup_index.py):
what they claim to plant is what they plant, and both cosine indexes they measure (wb's
clustered one and the HNSW alternative) return only true pairs and find the planted
copies. No timing here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cosine():
    return _load("dedup_cosine_index")


def test_planted_embeddings_are_unit_vectors_with_copies_at_the_stated_cosines(cosine):
    v, planted = cosine.planted_embeddings(4000)
    assert v.shape == (4000, cosine.DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert len(planted) == 200  # 5 %: one source and its copies per family
    sims = np.array([v[a] @ v[b] for a, b in planted])
    assert sims.min() >= 0.80 - 1e-4 and sims.max() <= 0.99 + 1e-4
    # the rest look like photos, not noise: alike within a scene, never near copies
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4000, 2000), rng.integers(0, 4000, 2000)
    other = np.einsum("ij,ij->i", v[a], v[b])[a != b]
    assert 0.1 < np.median(other) < 0.5
    assert v[0] @ v[0] == pytest.approx(1.0, abs=1e-5)


def test_the_exact_search_finds_every_planted_copy(cosine):
    from workbench.dedup.embeddings import find_cosine_pairs

    v, planted = cosine.planted_embeddings(3000)
    p = find_cosine_pairs(v, 0.80)
    assert planted <= set(zip(p.i.tolist(), p.j.tolist()))


def test_planted_hashes_plant_copies_within_eight_bits():
    index = _load("dedup_index")
    h = index.planted_hashes(20_000)
    assert h.dtype == np.uint64 and len(h) == 20_000
    from workbench.dedup.search import find_pairs

    pairs = find_pairs(h, 8).as_set()
    assert len(pairs) >= 0.05 * 20_000 * 0.9  # the planted copies (a few share a source)


def planted_unit_vectors(n: int, dim: int = 64, seed: int = 3):
    """Random unit vectors (cosine ~0 between them) and families of near copies at
    cosine 0.80-0.99 to their source, with a family of 40 (more than INDEX_K)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    order = rng.permutation(n)
    families = [(order[0], order[1:41])] + [
        (order[41 + 4 * f], order[42 + 4 * f : 45 + 4 * f]) for f in range(60)
    ]
    for src, copies in families:
        t = rng.uniform(0.80, 0.99, len(copies)).astype(np.float32)
        noise = rng.standard_normal((len(copies), dim)).astype(np.float32)
        noise -= (noise @ v[src])[:, None] * v[src]
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v[copies] = t[:, None] * v[src] + np.sqrt(1 - t**2)[:, None] * noise
    return v, families


@pytest.mark.parametrize("search", ["clustered", "hnsw"])
def test_each_index_finds_the_planted_copies_and_only_true_pairs(cosine, search):
    """wb's clustered index and the benchmark's HNSW alternative, on the same data."""
    from workbench.dedup.embeddings import clustered_cosine_pairs, find_cosine_pairs

    v, families = planted_unit_vectors(3000)
    exact = find_cosine_pairs(v, 0.8)
    index = (clustered_cosine_pairs if search == "clustered" else cosine.hnsw_cosine_pairs)(v, 0.8)
    ex = set(zip(exact.i.tolist(), exact.j.tolist()))
    ix = set(zip(index.i.tolist(), index.j.tolist()))
    assert ix <= ex  # every candidate's cosine is rechecked exactly
    assert len(ix) == len(index)  # each pair once, though found from both ends
    assert len(ix & ex) / len(ex) >= 0.97
    # every planted copy is paired with its source, the family larger than k included
    for src, copies in families:
        for c in copies.tolist():
            assert (min(src, c), max(src, c)) in ix
    assert np.all(np.diff(index.similarity) <= 0)  # best first, as the exact search
    sims = {(a, b): s for a, b, s in zip(exact.i.tolist(), exact.j.tolist(), exact.similarity)}
    for a, b, s in zip(index.i.tolist(), index.j.tolist(), index.similarity):
        assert s == pytest.approx(sims[(a, b)], abs=1e-5)
