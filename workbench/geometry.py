"""Box geometry shared by every area: one IoU for pixel xyxy boxes, one box matcher."""

from __future__ import annotations

from collections.abc import Sequence


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
    iou_threshold: float = 0.5,
    labels: tuple[Sequence[str], Sequence[str]] | None = None,
) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(i, j, iou)`` of boxes of ``a`` and ``b`` (pixel xyxy) with
    IoU >= ``iou_threshold``, the highest IoU paired first (greedy, as COCO matching).

    ``labels``: the boxes' labels ``(labels_a, labels_b)``; when given, only boxes of the
    same label pair. Without it any two boxes may pair, so a caller can tell a box that
    was relabelled (paired, other label) from one that was deleted (not paired)."""
    candidates = []
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if labels is not None and labels[0][i] != labels[1][j]:
                continue
            iou = iou_xyxy(x, y)
            if iou >= iou_threshold:
                candidates.append((iou, i, j))
    candidates.sort(key=lambda t: (-t[0], t[1], t[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for iou, i, j in candidates:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j, iou))
    return sorted(pairs)
