"""Choosing the next batch to annotate: ``uncertainty``, ``diverse`` or ``random``.

``diverse`` is k-center greedy (core-set) on pooled backbone features (centred on the
pool's mean, then normalised) among the most uncertain candidates: it starts from the most uncertain image, then repeatedly takes the
candidate farthest from everything already picked (ties broken by uncertainty). A
candidate at distance ~0 from a picked image (an exact copy) is never picked.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass

import numpy as np

from ..errors import check_choice

STRATEGIES = ("uncertainty", "diverse", "random")


@dataclass
class SelectionConfig:
    strategy: str = "uncertainty"
    batch: int = 20
    pool_factor: int = 4  # diverse: consider the pool_factor * batch most uncertain
    min_distance: float = 1e-6  # diverse: closer than this counts as the same image
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.batch < 1:
            raise ValueError("--batch must be at least 1")


def select_batch(
    ids: list[int],
    uncertainty: list[float],
    config: SelectionConfig,
    features: np.ndarray | None = None,
) -> list[int]:
    """Return up to ``config.batch`` ids in annotation order (first = ask first)."""
    if len(ids) != len(uncertainty):
        raise ValueError("ids and uncertainty differ in length")
    order = sorted(range(len(ids)), key=lambda i: (-uncertainty[i], ids[i]))
    k = min(config.batch, len(ids))
    if config.strategy == "uncertainty":
        return [ids[i] for i in order[:k]]
    if config.strategy == "random":
        rng = _random.Random(config.seed)
        return rng.sample(ids, k)
    if features is None or len(features) != len(ids):
        raise ValueError("the diverse strategy needs one feature vector per candidate")
    pool = order[: max(k, config.pool_factor * k)]
    feats = np.asarray(features, dtype=np.float64)[pool]
    # Pooled backbone maps share a large common part (biases, the average photo): without
    # centring, every image points almost the same way once normalised.
    feats = feats - feats.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    feats = feats / np.where(norms > 0, norms, 1.0)
    chosen = [0]
    dist = np.linalg.norm(feats - feats[0], axis=1)
    unc = np.array([uncertainty[i] for i in pool])
    while len(chosen) < k:
        cand = np.where(dist > config.min_distance)[0]
        if cand.size == 0:
            break  # only copies of already-picked images are left
        # farthest first; among near-ties (within 1%), the more uncertain
        best = dist[cand].max()
        near = cand[dist[cand] >= best * 0.99]
        nxt = int(near[np.argmax(unc[near])])
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(feats - feats[nxt], axis=1))
    return [ids[pool[c]] for c in chosen]
