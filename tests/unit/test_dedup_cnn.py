"""`wb dedup --method cnn`: cosine pairs, merging with hash pairs, stored embeddings, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.dedup.embeddings import (
    EmbedResult,
    InvalidCosine,
    find_cosine_pairs,
    weights_available,
)
from workbench.dedup.groups import Edge, connected_components
from workbench.dedup.hashing import cache_keys
from workbench.dedup.run import (
    DedupOptions,
    UnknownDedupMethod,
    cnn_edges,
    find_duplicates,
    merge_edges,
    parse_methods,
)
from workbench.ingest import ingest


def photo(seed: int, size=(160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.BICUBIC)


def unit(*xs) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_cosine_pairs_on_hand_made_vectors_and_the_threshold_edge():
    # cos(a, b) = 0.8 exactly; c is orthogonal to both; d equals a
    v = np.stack([unit(1, 0, 0), unit(0.8, 0.6, 0), unit(0, 0, 1), unit(1, 0, 0)])
    at_edge = find_cosine_pairs(v, 0.8, block=2)  # blocks smaller than n: still every pair
    assert sorted(zip(at_edge.i.tolist(), at_edge.j.tolist())) == [(0, 1), (0, 3), (1, 3)]
    assert at_edge.similarity[0] == pytest.approx(1.0)  # highest first
    above = find_cosine_pairs(v, 0.81)
    assert list(zip(above.i.tolist(), above.j.tolist())) == [(0, 3)]
    assert len(find_cosine_pairs(v[:1], 0.5)) == 0
    with pytest.raises(InvalidCosine, match=r"min_cosine must be in \(0, 1\]"):
        find_cosine_pairs(v, 0.0)


def test_progress_is_reported_block_by_block_to_the_end():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((600, 64)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    seen: list[tuple[int, int]] = []
    find_cosine_pairs(v, 0.8, block=128, on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (600, 600)
    assert [d for d, _ in seen] == [128, 256, 384, 512, 600]


def _copies(n: int = 2000, dim: int = 64, seed: int = 5) -> np.ndarray:
    """Random unit vectors, every fifth a near copy (cosine ~0.95) of the one before."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v[1::5] = 0.9 * v[0::5][: len(v[1::5])] + 0.3 * v[1::5]
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_clustered_index_takes_over_from_index_from_with_progress_to_the_end(monkeypatch):
    from workbench.dedup import embeddings

    v = _copies()
    exact = find_cosine_pairs(v, 0.8)
    assert len(exact) == 400
    calls = []
    real = embeddings.clustered_cosine_pairs
    monkeypatch.setattr(
        embeddings, "clustered_cosine_pairs", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    find_cosine_pairs(v, 0.8)
    assert calls == []  # below INDEX_FROM: the exact product
    monkeypatch.setattr(embeddings, "INDEX_FROM", 1000)
    seen: list[tuple[int, int]] = []
    got = find_cosine_pairs(v, 0.8, on_progress=lambda d, t: seen.append((d, t)))
    assert calls == [1]
    assert set(zip(got.i.tolist(), got.j.tolist())) == set(zip(exact.i.tolist(), exact.j.tolist()))
    assert seen[-1] == (4000, 4000)  # lists chosen for every row, then every list scanned
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the same embeddings give the same lists, so the same pairs, every run
    again = find_cosine_pairs(v, 0.8, index=True)
    assert np.array_equal(again.i, got.i) and np.array_equal(again.j, got.j)
    assert len(find_cosine_pairs(v, 0.8, index=False)) == 400  # forced exact


def test_the_clustered_index_without_faiss_says_how_to_install_it(monkeypatch):
    import sys

    from workbench.errors import WorkbenchError

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    with pytest.raises(WorkbenchError, match="needs faiss: pip install faiss-cpu"):
        find_cosine_pairs(_copies(), 0.8, index=True)


def test_cnn_edges_become_groups_through_the_same_components():
    v = np.stack([unit(1, 0), unit(0.99, 0.14), unit(0, 1)])
    edges = cnn_edges([10, 11, 12], v, 0.95)
    assert [(e.a, e.b, e.how) for e in edges] == [(10, 11, "cnn")]
    assert edges[0].similarity == pytest.approx(0.99, abs=1e-3)
    assert edges[0].distance == 1  # (1 - cos) in hundredths
    assert connected_components(edges) == [[10, 11]]


def test_a_pair_found_by_hash_and_cnn_is_one_pair_with_both_methods():
    merged = merge_edges(
        [Edge(1, 2, 3, "hash"), Edge(2, 1, 5, "cnn", 0.97), Edge(3, 4, 2, "cnn", 0.93)]
    )
    by_pair = {(e.a, e.b): e for e in merged}
    assert len(merged) == 2
    assert by_pair[(1, 2)].how == "hash+cnn" and by_pair[(1, 2)].distance == 3
    assert by_pair[(1, 2)].similarity == 0.97
    assert by_pair[(3, 4)].how == "cnn"


def test_methods_parse_and_unknown_ones_list_the_valid():
    assert parse_methods("phash") == ("phash", False)
    assert parse_methods("cnn") == (None, True)
    assert parse_methods("phash,cnn") == ("phash", True)
    for bad in ("sift", "phash,dhash", "cnn,cnn", ""):
        with pytest.raises(UnknownDedupMethod, match="valid: one of phash, dhash"):
            parse_methods(bad)


class FakeEmbedder:
    """Vectors by file name: p0* share one direction, the rest are orthogonal."""

    calls: list[list[str]] = []

    def embed(self, paths, on_progress=None):
        FakeEmbedder.calls.append(list(paths))
        vecs = []
        for p in paths:
            name = Path(p).stem
            k = 0 if name.startswith("p0") else 1 + int(name[1])
            v = np.zeros(8, np.float32)
            v[k] = 1.0
            vecs.append(v)
        if on_progress:
            on_progress(len(paths), len(paths))
        return EmbedResult(list(paths), np.stack(vecs), [])


@pytest.fixture
def cnn_ws(workspace_factory, tmp_path):
    root = tmp_path / "photos" / "ivory"
    root.mkdir(parents=True)
    for i in range(4):
        photo(i).save(root / f"p{i}.jpg", quality=90)
    # a copy no hash finds (another photo's pixels), that the embedder calls the same
    photo(7).save(root / "p0_crop.jpg", quality=90)
    ws = workspace_factory(classes=["ivory"])
    catalog = ws.open_catalog()
    ingest(ws, catalog, root.parent, "folders", workers=1)
    yield ws, catalog, root
    catalog.close()


def test_cnn_groups_through_the_same_path_and_reruns_embed_nothing(cnn_ws):
    ws, catalog, root = cnn_ws
    FakeEmbedder.calls = []
    opts = DedupOptions(method="phash,cnn", workers=1)
    run = find_duplicates(catalog, opts, embedder_factory=FakeEmbedder)
    assert run.embedded_now == 5 and run.pairs == {"cnn": 1}
    groups = catalog.dup_groups()
    assert len(groups) == 1 and groups[0].kind == "duplicate"
    status = {Path(im.path).name: im.status for im in catalog.images()}
    assert sorted(n for n, s in status.items() if s == "duplicate") in (["p0.jpg"], ["p0_crop.jpg"])
    again = find_duplicates(catalog, opts, embedder_factory=FakeEmbedder)
    assert (again.embedded_now, again.embedded_cached) == (0, 5)
    assert len(FakeEmbedder.calls) == 1
    hash_only = find_duplicates(catalog, DedupOptions(method="phash", workers=1))
    assert hash_only.pairs == {} and catalog.dup_groups() == []


def test_a_changed_file_is_embedded_again(cnn_ws):
    ws, catalog, root = cnn_ws
    FakeEmbedder.calls = []
    opts = DedupOptions(method="cnn")
    find_duplicates(catalog, opts, embedder_factory=FakeEmbedder)
    photo(9).save(root / "p3.jpg", quality=90)
    ingest(ws, catalog, root.parent, "folders", workers=1)
    run = find_duplicates(catalog, opts, embedder_factory=FakeEmbedder)
    assert run.embedded_now == 1 and Path(FakeEmbedder.calls[-1][0]).name == "p3.jpg"


def wb(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], catch_exceptions=False)


def test_cli_unknown_method_fails_with_the_valid_ones(cnn_ws):
    ws, _, _ = cnn_ws
    res = wb(ws, "dedup", "--no-progress", "--method", "phash,sift")
    assert res.exit_code == 1
    assert "unknown dedup method 'phash,sift'; valid: one of phash" in res.output


@pytest.mark.skipif(not weights_available()[0], reason="efficientnet-lite0 weights not installed")
def test_cli_cnn_runs_the_real_embedder_and_reports_it(cnn_ws):
    import torch

    torch.set_num_threads(1)
    ws, _, root = cnn_ws
    res = wb(ws, "dedup", "--json", "--no-progress", "--method", "phash,cnn", "--workers", "1")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["summary"]["embedded_now"] == 5
    assert report["settings"]["method"] == "phash,cnn"
    res = wb(ws, "dedup", "--json", "--no-progress", "--method", "cnn")
    assert json.loads(res.output)["summary"]["embedded_cached"] == 5


def test_cli_cnn_without_weights_says_so_before_any_work(cnn_ws, monkeypatch):
    import workbench.dedup.run as run_mod

    ws, catalog, _ = cnn_ws
    monkeypatch.setattr(run_mod, "weights_available", lambda: (False, "package not installed"))
    res = wb(ws, "dedup", "--no-progress", "--method", "cnn")
    assert res.exit_code == 1
    assert "--method cnn needs the EfficientNet-Lite0 ImageNet weights: package not" in res.output
    assert catalog.image_hashes(cache_keys("phash")[0]) == {}  # nothing was hashed or embedded
