"""`wb export`: the catalog's boxes in COCO, VOC or YOLO."""

from __future__ import annotations

from pathlib import Path

from .catalog import Catalog
from .errors import WorkbenchError
from .formats import ExportItem, write
from .workspace import Workspace


def export(
    ws: Workspace, catalog: Catalog, fmt: str, out: str | Path, annotated_only: bool = False
) -> tuple[Path, int]:
    """Export active images (never duplicates or unsettled conflicts) and their boxes."""
    images = catalog.images(status="active", annotated=True if annotated_only else None)
    if not images:
        raise WorkbenchError(
            "nothing to export: the catalog has no active images"
            + (" with annotations" if annotated_only else "")
            + ". Run `wb ingest` first."
        )
    boxes = catalog.boxes_by_image([im.id for im in images])
    items = [
        ExportItem(im.path, im.width, im.height, im.label, boxes.get(im.id, [])) for im in images
    ]
    classes = ws.taxonomy.all_labels
    return write(fmt, out, items, classes), len(items)
