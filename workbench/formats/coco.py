"""COCO detection JSON. ``file_name`` may be absolute or relative to the images folder
(default: the JSON's folder). An image with no annotations is a negative."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from ..catalog.records import Box, ImportedImage
from ..fsutil import atomic_write_json


def _load(path: Path) -> dict:
    from . import FormatError

    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            raise FormatError(
                f"--format coco needs the COCO JSON file; {path} is a folder with "
                f"{len(candidates)} JSON files: name the file"
            )
        path = candidates[0]
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(
            f"{path} is not valid JSON ({exc}); --format coco needs a COCO detection JSON file"
        ) from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise FormatError(
            f"{path} is not COCO detection JSON (needs 'images', 'annotations' "
            "and 'categories' keys)"
        )
    return data


def read_coco(path: Path, images_dir: Path | None) -> Iterator[ImportedImage]:
    from . import FormatError, majority_label

    data = _load(path)
    json_dir = path if path.is_dir() else path.parent
    base = images_dir or json_dir
    cats = {c["id"]: c["name"] for c in data.get("categories", [])}
    by_image = defaultdict(list)
    for a in data["annotations"]:
        if a.get("category_id") not in cats:
            raise FormatError(
                f"annotation {a.get('id')} has category_id {a.get('category_id')} "
                "that is not in 'categories'"
            )
        x, y, w, h = a["bbox"]
        by_image[a["image_id"]].append(Box(cats[a["category_id"]], x, y, x + w, y + h))
    for img in data["images"]:
        fn = Path(img["file_name"])
        p = fn if fn.is_absolute() else base / fn
        if not p.exists() and images_dir is None and (json_dir / "images" / fn).exists():
            p = json_dir / "images" / fn
        boxes = by_image.get(img["id"], [])
        label = img.get("label") or majority_label(boxes)
        yield ImportedImage(
            path=str(p.resolve()),
            label=label,
            boxes=boxes,
            width=img.get("width"),
            height=img.get("height"),
            extra={"reference": str(fn)},  # as the export names it: matches a phantom row
        )


def write_coco(out: Path, items, classes: list[str]) -> Path:
    if out.suffix.lower() != ".json":
        out = out / "annotations.json"
    names = list(classes)
    for it in items:
        for b in it.boxes:
            if b.label not in names:
                names.append(b.label)
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images, anns = [], []
    for i, it in enumerate(items, start=1):
        images.append(
            {
                "id": i,
                "file_name": it.path,
                "width": it.width,
                "height": it.height,
                "label": it.label,
            }
        )
        for b in it.boxes:
            w, h = b.x2 - b.x1, b.y2 - b.y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": cat_id[b.label],
                    "bbox": [b.x1, b.y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    atomic_write_json(
        out,
        {
            "info": {"description": "exported by workbench"},
            "images": images,
            "annotations": anns,
            "categories": [{"id": cat_id[n], "name": n, "supercategory": ""} for n in names],
        },
    )
    return out
