"""Test data for the Label Studio integration tests: small images drawn with Pillow
(one EXIF-rotated), catalog rows, and a promoted model's predictions."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from workbench.catalog import ImageRecord, now_iso
from workbench.images import probe_image
from workbench.labelstudio.tasks import percent_rect

LABELS = ["elephant_ivory", "pangolin_raw_scale", "tiger_claw", "non_wildlife", "background"]
MODEL_VERSION = "v-test-1"


def draw_images(folder: Path, n: int, rotated: tuple[int, ...] = (1,)) -> list[Path]:
    """``n`` JPEGs in folder/<label>/; the indices in ``rotated`` carry EXIF
    orientation 6 (stored 96x64, shown 64x96)."""
    paths = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        p = folder / label / f"img {i:03d}.jpg"  # a space: URLs must be quoted
        p.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (96, 64), (30 + 10 * i % 200, 80, 120))
        ImageDraw.Draw(img).rectangle([10 + i % 20, 8, 50 + i % 20, 40], fill=(240, 230, 200))
        if i in rotated:
            exif = Image.Exif()
            exif[0x0112] = 6
            img.save(p, quality=90, exif=exif)
        else:
            img.save(p, quality=90)
        paths.append(p)
    return paths


def add_images(catalog, paths: list[Path]) -> list[int]:
    """Catalog rows with the EXIF-corrected size, as ingest writes them."""
    ids = []
    for p in paths:
        info = probe_image(p)
        ids.append(
            catalog.add_image(
                ImageRecord(
                    id=None,
                    path=str(p.resolve()),
                    width=info.width,
                    height=info.height,
                    label=p.parent.name,
                )
            )
        )
    return ids


def add_promoted_model(catalog, image_ids: list[int], uncertain: set[int] = frozenset()) -> dict:
    """A promoted `models` row and one prediction per image (data, written as the
    retrain feature writes it). Returns image id -> boxes."""
    ts = now_iso()
    boxes_by_image = {}
    with catalog.atomic() as db:
        db.execute(
            "INSERT INTO models (version, created_at, promoted, promoted_at, level, classes_json) "
            "VALUES (?, ?, 1, ?, 'species', ?)",
            (MODEL_VERSION, ts, ts, json.dumps(["elephant", "pangolin", "tiger", "non_wildlife"])),
        )
        for k, image_id in enumerate(image_ids):
            boxes = [
                {
                    "label": "elephant",
                    "x1": 5.25 + k % 7,
                    "y1": 6.5,
                    "x2": 40.75,
                    "y2": 30.125,
                    "score": 0.9,
                    "probs": {"elephant": 0.9, "tiger": 0.1},
                }
            ]
            if k % 2:
                boxes.append(
                    {
                        "label": "tiger",
                        "x1": 30.0,
                        "y1": 20.0,
                        "x2": 60.0,
                        "y2": 50.0,
                        "score": 0.6,
                        "probs": {"tiger": 0.6, "elephant": 0.4},
                    }
                )
            boxes_by_image[image_id] = boxes
            db.execute(
                "INSERT INTO predictions (image_id, model_version, boxes_json, created_at) "
                "VALUES (?, ?, ?, ?)",
                (image_id, MODEL_VERSION, json.dumps(boxes), ts),
            )
            if image_id in uncertain:
                db.execute(
                    "INSERT INTO priorities (image_id, model_version, uncertainty, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (image_id, MODEL_VERSION, 0.75, ts),
                )
    return boxes_by_image


def annotation_rect(label: str, x1, y1, x2, y2, w: int, h: int) -> dict:
    """One rectangle of an annotation as Label Studio's editor saves it (pixels in,
    percent of the original size out)."""
    value = percent_rect({"x1": x1, "y1": y1, "x2": x2, "y2": y2}, w, h)
    value["rectanglelabels"] = [label]
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": value,
    }


def imported_workspace(label_studio, root: Path, name: str, seed: int):
    """A workspace attached to the test server with 24 demo images ingested from their
    COCO file (every image arrives with its boxes or as a negative). Returns
    (workspace, open catalog, {image id: record} of the active images)."""
    from workbench.demo_data import generate_demo_data
    from workbench.ingest import ingest
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    ws = Workspace.create(root / "ws", Taxonomy.default())
    label_studio.attach(ws)
    catalog = ws.open_catalog()
    demo = label_studio.images_dir(name) / "demo"
    generate_demo_data(demo, seed=seed, n_images=24)
    ingest(ws, catalog, demo / "annotations.json", "coco")
    return ws, catalog, {im.id: im for im in catalog.images(status="active")}
