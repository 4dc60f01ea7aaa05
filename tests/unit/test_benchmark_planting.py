"""The pair-search benchmarks' planted data (benchmarks/dedup_cosine_index.py and
benchmarks/dedup_index.py): what they claim to plant is what they plant. No timing here."""

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
