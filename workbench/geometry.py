"""Box geometry shared by every area: one IoU for pixel xyxy boxes, one box matcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def iou_xyxy(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when both are empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    min_iou: float,
    pairable: Callable[[int, int], bool] | None = None,
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i, j, iou)`` between boxes ``a[i]`` and ``b[j]`` (pixel
    xyxy), greedy by IoU, highest first: each box in at most one pair, every pair at or
    above ``min_iou``. ``pairable(i, j)``: only such pairs are considered (e.g. same class);
    None: any. Ties go to the lower indices, so the result does not depend on chance."""
    pairs = []
    for i, box_a in enumerate(a):
        for j, box_b in enumerate(b):
            if pairable is not None and not pairable(i, j):
                continue
            iou = iou_xyxy(box_a, box_b)
            if iou >= min_iou and iou > 0:
                pairs.append((-iou, i, j))
    pairs.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for neg_iou, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j, -neg_iou))
    return out
