"""Does a model find anything? The gate between training and serving, without torch.

``finds_nothing`` judges predictions (a pure function); ``finds_nothing_warning`` is the
one line `wb push`, `wb prioritize` and `wb models promote` print when the version they
use finds nothing. It reads only the registry and the catalog's stored predictions, so
those commands do not load torch for it (importing `detection.retrain` takes 7.8 s and
820 MB peak on this loaded 2-core machine; this module 0.24 s and 18 MB).
"""

from __future__ import annotations

from collections.abc import Iterable

from .registry import Registry

# "finds nothing": at least FLAT_MIN_BOXES boxes whose scores all lie within
# FLAT_SCORE_BAND of each other is a model that scores every box alike, unless every box
# is at FLAT_SURE or above (a model sure of each box it gives is not flat)
FLAT_SCORE_BAND = 0.02
FLAT_MIN_BOXES = 10
FLAT_SURE = 0.9


def finds_nothing(
    detections: Iterable[Iterable], floor: float, band: float = FLAT_SCORE_BAND
) -> str | None:
    """Why predictions show a model that finds nothing, or None when they do not.

    ``detections``: one list of boxes per image (``Detection`` or the stored dicts, each
    with a ``score``). A model finds nothing when it gives no box at all, no box at or
    above ``floor`` (the score people see drawn), or at least ``FLAT_MIN_BOXES`` boxes all
    within ``band`` of each other, not all of them sure (``FLAT_SURE``). No images: None
    (nothing to judge on)."""
    per_image = [list(boxes) for boxes in detections]
    scores = [float(b["score"] if isinstance(b, dict) else b.score) for im in per_image for b in im]
    n = f"{len(per_image)} image{'' if len(per_image) == 1 else 's'}"
    if not per_image:
        return None
    if not scores:
        return f"no boxes at all on {n}"
    low, top = min(scores), max(scores)
    if top < floor:
        return f"no box at or above the display floor {floor:g} on {n}, the highest at {top:.2f}"
    if len(scores) >= FLAT_MIN_BOXES and top - low < band and low < FLAT_SURE:
        return (
            f"all {len(scores)} boxes on {n} score between {low:.2f} and {top:.2f}: "
            "it does not tell objects apart"
        )
    return None


def finds_nothing_warning(ws, catalog, version: str | None = None) -> str | None:
    """One warning line when the version (default: the promoted one) finds nothing, as
    judged at registration or (older workspaces) on its stored predictions; else None."""
    from ..labelstudio.tasks import DISPLAY_MIN_SCORE

    registry = Registry.of(ws, catalog)
    current = registry.promoted() if version is None else registry.get(version)
    if current is None or current.task != "detect":  # a classifier draws no boxes
        return None
    why = current.metrics.get("finds_nothing") or finds_nothing(
        catalog.predictions(current.version).values(), DISPLAY_MIN_SCORE
    )
    if not why:
        return None
    return (
        f"warning: model {current.version} finds nothing ({why}): "
        + (
            "its boxes all score alike, so they and the order they give say nothing"
            if why.startswith("all ")
            else f"its boxes are below the display floor {DISPLAY_MIN_SCORE:g}, so tasks "
            "get none and the order rests on label signals alone"
        )
        + ". Train a better one (`wb retrain`, more epochs or images) or promote another "
        "(`wb models`, `wb models promote VERSION`)."
    )
