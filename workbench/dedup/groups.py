"""Pairs -> groups (connected components) and the rules that judge a group.

Pure functions over plain records; ``run.py`` applies their verdicts to the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..catalog.records import ImageRecord
from ..graph import components


@dataclass(frozen=True)
class Edge:
    """Two images judged to be copies of each other, and how."""

    a: int  # image ids
    b: int
    distance: int  # Hamming distance (0 for identical bytes)
    how: str  # exact | hash | centre | verified
    similarity: float | None = None  # pixel correlation, for verified pairs


def connected_components(edges: Iterable[Edge]) -> list[list[int]]:
    """Image-id components of size >= 2, each sorted, in order of their smallest id."""
    return [c for c in components((e.a, e.b) for e in edges) if len(c) > 1]


def group_key(images: Iterable[ImageRecord]) -> str:
    """Stable identity of a group: its members' sorted sha256s."""
    return ",".join(sorted(img.sha256 or f"id:{img.id}" for img in images))


def keeper(images: Iterable[ImageRecord]) -> ImageRecord:
    """The image a duplicate group keeps: a labelled one before one with no label, then
    an annotated one (it has boxes or was marked a negative: setting it aside would hide
    that work from training), then the largest pixel count, then the first ingested."""
    return min(
        images,
        key=lambda im: (
            im.label is None,
            not im.annotated,
            -im.pixels,
            im.ingested_at or "",
            im.id or 0,
        ),
    )


def group_kind(images: Iterable[ImageRecord]) -> str:
    """``conflict`` when two members carry different image-level labels, else
    ``duplicate``. "No label" never disagrees: an unlabelled copy of a labelled image
    (a class folder ingested as PATH itself) is a duplicate, not a conflict."""
    labels = {im.label for im in images if im.label is not None}
    return "conflict" if len(labels) > 1 else "duplicate"


def member_distances(members: Iterable[int], edges: Iterable[Edge]) -> dict[int, int]:
    """Each member's smallest distance to another member."""
    members = set(members)
    best: dict[int, int] = {}
    for e in edges:
        if e.a in members and e.b in members:
            for x in (e.a, e.b):
                best[x] = min(best.get(x, e.distance), e.distance)
    return best
