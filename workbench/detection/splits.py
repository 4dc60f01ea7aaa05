"""Train/val/test splits: stratified by label, seeded, and sticky.

An image keeps the split it was first given (``catalog.set_splits`` never overwrites),
so test figures stay comparable across retrains and no test image ever reaches
training. New images are dealt, label by label in a seeded order, to whichever split
is furthest below its share of that label.

Duplicate groups never straddle splits (no near-copy of a test image in training): the
images of one ``wb dedup`` group (duplicate or conflict, unless settled as distinct) are
dealt as one unit, and a group whose members already hold different splits takes the
most held-out of them (test over val over train), so the test set only grows and no test
image ever moves into training. That is the one exception to stickiness, and it moves
only the members that leak (a workspace split before dedup ran).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable

from ..catalog.records import SPLITS
from ..errors import WorkbenchError
from ..graph import components
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


# A group whose members disagree takes the first of these its members hold.
HELD_OUT_FIRST = ("test", "val", "train")


def split_units(image_ids: Iterable[int], groups: Iterable[Iterable[int]] = ()) -> list[list[int]]:
    """The images in ``image_ids`` cut into units that must share one split: the
    connected components of ``groups`` (members outside ``image_ids`` are ignored), every
    other image alone. Each unit is sorted; units are sorted by their first image."""
    ids = set(image_ids)
    links = []
    for group in groups:
        members = sorted(i for i in set(group) if i in ids)
        links += [(members[0], other) for other in members[1:]]
    return components(links, nodes=ids)


def deal_splits(
    labels: dict[int, str],
    existing: dict[int, str | None],
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    groups: Iterable[Iterable[int]] = (),
) -> dict[int, str]:
    """Splits to write for the images in ``labels`` (pure function): every image without
    one in ``existing``, and every grouped image whose split differs from its group's.

    A unit (see ``split_units``) with a split already takes the most held-out split its
    members hold; a fresh unit is dealt, under the label of its first image, to the split
    furthest below its share of that label, and counts as many images as it holds."""
    fractions = _check(fractions or DEFAULT_FRACTIONS)
    out: dict[int, str] = {}
    counts: dict[str, Counter] = defaultdict(Counter)
    fresh_units: dict[str, list[list[int]]] = defaultdict(list)
    for unit in split_units(labels, groups):
        held = {existing[i] for i in unit if existing.get(i)}
        if not held:
            fresh_units[labels[unit[0]]].append(unit)
            continue
        split = next(s for s in HELD_OUT_FIRST if s in held)
        for i in unit:
            counts[labels[i]][split] += 1
            if existing.get(i) != split:
                out[i] = split
    for label in sorted(fresh_units):
        units = fresh_units[label]
        random.Random(f"{seed}:{label}").shuffle(units)
        label_counts = counts[label]
        for unit in units:
            n = sum(label_counts.values()) + len(unit)
            split = max(
                SPLITS, key=lambda s: (fractions[s] * n - label_counts[s], -SPLITS.index(s))
            )
            label_counts[split] += len(unit)
            out.update(dict.fromkeys(unit, split))
    return out


def ensure_splits(
    catalog,
    taxonomy: Taxonomy,
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    level: str = "species",
) -> dict[int, str]:
    """Give every active annotated image a split (keeping existing ones, except group
    members that leak: see the module doc); returns the split of each such image. Stratified by species so that per-species models and the
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
    groups = [
        [m.image_id for m in g.members] for g in catalog.dup_groups() if g.resolution != "distinct"
    ]
    dealt = deal_splits(labels, existing, fractions, seed, groups)
    new = {i: s for i, s in dealt.items() if not existing.get(i)}
    moved = {i: s for i, s in dealt.items() if existing.get(i)}
    if new:
        catalog.set_splits(new)
        logger.info("assigned splits to %d new images: %s", len(new), dict(Counter(new.values())))
    if moved:
        catalog.set_splits(moved, reassign=True)
        logger.warning(
            "moved %d images so that no duplicate group straddles splits (their group's "
            "most held-out split): %s",
            len(moved),
            dict(Counter(moved.values())),
        )
    return {im.id: im.split for im in catalog.images(ids=labels)}
