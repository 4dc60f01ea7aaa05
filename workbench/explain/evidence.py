"""The inverted-activation check: is a box's evidence inside the box?

For one detection and its heatmap (values in [0, 1], the image's size):

- ``inside_share``: the heatmap's energy (sum of values) inside the box over its energy
  on the whole image; ``None`` when the map is empty (all zero: nothing to share);
- ``box_area_share``: the box's area over the image's, what a flat map would give, to
  read a small box's share against;
- ``flagged``: the evidence is mostly outside the box, ``inside_share < threshold``
  (default ``DEFAULT_MIN_INSIDE_SHARE``, 0.5). The studies saw such boxes with the right
  class: the model was right for the wrong reason (background, cages, hands).

``flagged_by_class`` is the share of flagged detections per class (the study saw it most
for ivory). Plain numpy; no model here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

#: a detection is flagged when less than this share of its heatmap lies inside its box
DEFAULT_MIN_INSIDE_SHARE = 0.5


def _pixel_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """The pixel columns (or rows) a box edge pair covers, clipped to the image."""
    a = min(max(int(math.floor(lo)), 0), size)
    b = min(max(int(math.ceil(hi)), 0), size)
    return a, max(a, b)


def inside_share(heatmap: np.ndarray, box: Sequence[float]) -> float | None:
    """Energy inside ``box`` (pixel x1, y1, x2, y2) over the whole map's energy."""
    total = float(heatmap.sum(dtype=np.float64))
    if total <= 0.0:
        return None
    h, w = heatmap.shape
    c0, c1 = _pixel_span(box[0], box[2], w)
    r0, r1 = _pixel_span(box[1], box[3], h)
    inside = float(heatmap[r0:r1, c0:c1].sum(dtype=np.float64))
    return min(1.0, inside / total)


def box_area_share(box: Sequence[float], width: int, height: int) -> float:
    c0, c1 = _pixel_span(box[0], box[2], width)
    r0, r1 = _pixel_span(box[1], box[3], height)
    return (c1 - c0) * (r1 - r0) / float(width * height) if width and height else 0.0


def is_flagged(share: float | None, threshold: float = DEFAULT_MIN_INSIDE_SHARE) -> bool | None:
    """Mostly outside the box; ``None`` when there is no share (an empty map)."""
    return None if share is None else share < threshold


def flagged_by_class(rows: Iterable[dict]) -> dict[str, dict]:
    """``{label: {"detections", "flagged", "share_flagged"}}`` over detection rows
    (dicts with ``label`` and ``flagged``), classes sorted by name. Detections without a
    verdict (empty map) count as detections, not as flagged."""
    out: dict[str, dict] = {}
    for r in rows:
        c = out.setdefault(r["label"], {"detections": 0, "flagged": 0})
        c["detections"] += 1
        c["flagged"] += 1 if r.get("flagged") else 0
    for c in out.values():
        c["share_flagged"] = round(c["flagged"] / c["detections"], 4)
    return dict(sorted(out.items()))
