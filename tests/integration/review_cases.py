"""A hand-made review case: five small images, ground truth, two model versions.

Shared by the review integration and browser tests. Box numbers are chosen so the
expected COCO matching (IoU 0.5) is obvious; see ``EXPECTED``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from workbench.catalog import Box, ImageRecord
from workbench.catalog.records import DupMember

W, H = 200, 100
IVORY_BOX = (10, 10, 60, 60)
RESIN_BOX = (100, 20, 150, 80)


def _pred(label: str, box, score: float) -> dict:
    x1, y1, x2, y2 = box
    other = "resin" if label == "ivory" else "ivory"
    return {
        "label": label,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "score": score,
        "probs": {label: score, other: round(1 - score, 3)},
    }


def _draw(path: Path, boxes, colour) -> None:
    img = Image.new("RGB", (W, H), colour)
    draw = ImageDraw.Draw(img)
    for b in boxes:
        draw.rectangle(b, outline=(255, 255, 255), width=3)
    img.save(path)


# name -> (split, image label, annotated, gt boxes)
IMAGES = {
    "one": ("train", "ivory", True, [("ivory", IVORY_BOX)]),
    "two": ("test", "ivory", True, [("ivory", IVORY_BOX), ("resin", RESIN_BOX)]),
    "three": ("val", "background", True, []),
    "four": (None, "resin", False, None),
    "five": ("train", "ivory", True, [("ivory", IVORY_BOX)]),  # a duplicate of "one"
}

PREDICTIONS = {
    "v1": {
        # one TP, one confident FP far from any ground truth
        "one": [_pred("ivory", (12, 12, 60, 60), 0.9), _pred("resin", (100, 10, 150, 60), 0.95)],
        # the ivory box called resin (a confusion), the resin box missed
        "two": [_pred("resin", IVORY_BOX, 0.85)],
        "three": [_pred("ivory", (20, 20, 50, 50), 0.5)],
        "four": [_pred("ivory", (20, 20, 50, 50), 0.6)],
    },
    "v2": {
        "one": [_pred("ivory", (12, 12, 60, 60), 0.9)],
        "two": [_pred("ivory", IVORY_BOX, 0.9), _pred("resin", RESIN_BOX, 0.7)],
        "three": [_pred("ivory", (20, 20, 50, 50), 0.3), _pred("resin", (120, 20, 160, 60), 0.4)],
        "four": [_pred("resin", (20, 20, 50, 50), 0.8)],
    },
}

# per version, per evaluated image (active and annotated: not "four", not the
# duplicate "five"): (tp, fp, fn) under class-wise COCO matching at IoU 0.5
EXPECTED = {
    "v1": {"one": (1, 1, 0), "two": (0, 1, 2), "three": (0, 1, 0)},
    "v2": {"one": (1, 0, 0), "two": (2, 0, 0), "three": (0, 2, 0)},
}
EVALUATED = ("one", "two", "three")

UNCERTAINTY = {"four": 0.9, "three": 0.2, "one": 0.1}


def build_case(ws, root: Path) -> dict[str, int]:
    """Images on disk and rows in the workspace catalog; returns name -> image id."""
    root.mkdir(parents=True, exist_ok=True)
    ids: dict[str, int] = {}
    colours = {
        "one": (90, 60, 30),
        "two": (30, 90, 60),
        "three": (60, 30, 90),
        "four": (120, 120, 30),
        "five": (90, 60, 31),
    }
    with ws.open_catalog() as catalog:
        for name, (split, label, annotated, boxes) in IMAGES.items():
            path = root / f"{name}.png"
            _draw(path, [b for _, b in boxes or []], colours[name])
            rec = ImageRecord(
                id=None,
                path=str(path),
                width=W,
                height=H,
                label=label,
                split=split,
                annotated=annotated,
                source_format="folders",
                status="duplicate" if name == "five" else "active",
            )
            ids[name] = catalog.add_image(
                rec, boxes=None if boxes is None else [Box(lbl, *b) for lbl, b in boxes]
            )
        catalog.add_model("v1", None, "species", ["ivory", "resin"], {}, {})
        catalog.add_model("v2", "v1", "species", ["ivory", "resin"], {}, {})
        catalog.promote_model("v2")
        for version, per_image in PREDICTIONS.items():
            catalog.store_predictions(version, {ids[n]: dets for n, dets in per_image.items()})
        catalog.store_priorities("v2", [(ids[n], u, {}) for n, u in UNCERTAINTY.items()])
        catalog.save_dup_group(
            "one+five",
            "duplicate",
            [DupMember(ids["one"], True, 0), DupMember(ids["five"], False, 0)],
            method="phash",
            max_distance=0,
        )
    return ids
