"""Train/val/test splits: stratified by label, seeded, and sticky.

An image keeps the split it was first given (``catalog.set_splits`` never overwrites),
so test figures stay comparable across retrains and no test image ever reaches
training. New images are dealt, label by label in a seeded order, to whichever split
is furthest below its share of that label.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict

from ..catalog.records import SPLITS
from ..errors import WorkbenchError
from ..taxonomy import Taxonomy, image_level_label

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def _check(fractions: dict[str, float]) -> dict[str, float]:
    if set(fractions) != set(SPLITS) or any(v < 0 for v in fractions.values()):
        raise WorkbenchError(f"split fractions need train, val and test >= 0, got {fractions}")
    total = sum(fractions.values())
    if total <= 0:
        raise WorkbenchError("split fractions sum to 0")
    return {k: v / total for k, v in fractions.items()}


def deal_splits(
    labels: dict[int, str],
    existing: dict[int, str | None],
    fractions: dict[str, float] | None = None,
    seed: int = 0,
) -> dict[int, str]:
    """Splits for the images in ``labels`` that have none in ``existing`` (pure function)."""
    fractions = _check(fractions or DEFAULT_FRACTIONS)
    strata: dict[str, list[int]] = defaultdict(list)
    for image_id, label in labels.items():
        strata[label].append(image_id)
    new: dict[int, str] = {}
    for label in sorted(strata):
        ids = sorted(strata[label])
        counts = Counter(existing[i] for i in ids if existing.get(i))
        fresh = [i for i in ids if not existing.get(i)]
        random.Random(f"{seed}:{label}").shuffle(fresh)
        for image_id in fresh:
            n = sum(counts.values()) + 1
            split = max(SPLITS, key=lambda s: (fractions[s] * n - counts[s], -SPLITS.index(s)))
            counts[split] += 1
            new[image_id] = split
    return new


def ensure_splits(
    catalog,
    taxonomy: Taxonomy,
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    level: str = "species",
) -> dict[int, str]:
    """Give every active annotated image a split (keeping existing ones); returns the
    split of each such image. Stratified by species so that per-species models and the
    multi-species model share one test set."""
    images = catalog.images(status="active", annotated=True)
    boxes = catalog.boxes_by_image([im.id for im in images])

    def mapped(label):
        return taxonomy.to_level(label, level, unknown="keep")

    labels = {
        im.id: image_level_label(
            mapped(im.label) if im.label else None, [mapped(b.label) for b in boxes.get(im.id, [])]
        )
        for im in images
    }
    existing = {im.id: im.split for im in images}
    new = deal_splits(labels, existing, fractions, seed)
    if new:
        catalog.set_splits(new)
        logger.info("assigned splits to %d new images: %s", len(new), dict(Counter(new.values())))
    return {im.id: im.split for im in catalog.images(ids=labels)}
