"""Tiny synthetic detection data for tests and benchmarks: solid coloured rectangles
on noise, with exact boxes, written as files and added to a catalog.

Each class gets a distinct colour, so a small detector learns it from scratch on CPU
within seconds. Not the demo data set (``workbench.demo_data``): this one has no
planted duplicates and no realism, only speed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog.records import Box, ImageRecord
from ..taxonomy import BACKGROUND

PALETTE = [
    (230, 40, 40),
    (40, 90, 230),
    (40, 200, 60),
    (240, 200, 30),
    (200, 40, 200),
    (30, 210, 210),
]


def draw_image(
    rng: np.random.Generator, classes: list[str], size: int, n_objects: int
) -> tuple[Image.Image, list[Box]]:
    arr = rng.integers(60, 140, size=(size, size, 3), dtype=np.uint8)
    boxes = []
    for _ in range(n_objects):
        c = int(rng.integers(len(classes)))
        w, h = (int(v) for v in rng.integers(size // 5, size // 2, size=2))
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        arr[y : y + h, x : x + w] = PALETTE[c % len(PALETTE)]
        boxes.append(Box(classes[c], float(x), float(y), float(x + w), float(y + h)))
    return Image.fromarray(arr), boxes


def add_synthetic_images(
    catalog,
    out_dir: Path,
    classes: list[str],
    n_images: int,
    size: int = 96,
    seed: int = 0,
    negatives: int = 0,
    unannotated: int = 0,
) -> list[int]:
    """Write ``n_images`` annotated images (1-2 boxes each), ``negatives`` annotated
    background-only images and ``unannotated`` images with no ground truth; add them
    all to ``catalog``; returns their ids."""
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    plan = (
        [("object", i) for i in range(n_images)]
        + [("negative", i) for i in range(negatives)]
        + [("unannotated", i) for i in range(unannotated)]
    )
    for kind, i in plan:
        n_obj = 0 if kind == "negative" else int(rng.integers(1, 3))
        img, boxes = draw_image(rng, classes, size, n_obj)
        path = out_dir / f"{kind}-{seed}-{i:04d}.png"
        img.save(path)
        label = boxes[0].label if boxes else BACKGROUND
        rec = ImageRecord(
            None,
            str(path.resolve()),
            width=size,
            height=size,
            label=label,
            source_format="synthetic",
        )
        ids.append(catalog.add_image(rec, boxes=None if kind == "unannotated" else boxes))
    return ids
