"""Where `wb explain` keeps its pictures, and the index `wb review` reads them from.

Layout, under the workspace's ``reports/``::

    explain/<version>/<method>[@<layer>]/   one folder per model version and method
        index.html      the contact sheet of the latest run
        run.json        the latest run (what ``wb explain --json`` printed)
        explain.json    every image explained in this folder, over all runs (an image
                        explained again replaces its entry): the index review reads
        boxes/<image>-<k>.png   per detection: photo, box and heatmap
        maps/<image>.png        per image: the heatmap (8-bit grey, the image's size;
                                the pixelwise maximum over its boxes' maps)

``<image>`` is the catalog's image id, or ``x`` + a hash of the path for images outside
the catalog. Plain JSON and paths: no torch here (the review worker imports this).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import atomic_write_json

log = logging.getLogger(__name__)

INDEX = "explain.json"
RUN = "run.json"
SHEET = "index.html"


def run_folder(reports_dir: Path, version: str, method: str, layer: str, default_layer: str):
    name = method if layer == default_layer else f"{method}@{layer}"
    return Path(reports_dir) / "explain" / version / name


def image_key(image_id: int | None, path: str) -> str:
    if image_id is not None:
        return str(image_id)
    return "x" + hashlib.sha1(str(path).encode()).hexdigest()[:12]


def merge_index(folder: Path, run: dict) -> dict:
    """explain.json after ``run``: earlier entries of images it did not explain, then its."""
    folder = Path(folder)
    explained = {im["image"] for im in run["images"]}
    try:
        old = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        old = {"images": [], "detections": []}
    index = {
        **{k: v for k, v in run.items() if k not in ("images", "detections", "unreadable")},
        "images": [im for im in old.get("images", []) if im["image"] not in explained]
        + run["images"],
        "detections": [d for d in old.get("detections", []) if d["image"] not in explained]
        + run["detections"],
    }
    atomic_write_json(folder / INDEX, index)
    return index


@dataclass
class ImageExplanation:
    """What review attaches to one sample: its heatmap and its explained boxes."""

    heatmap: str  # absolute path of the grey map
    method: str
    layer: str
    created: str
    detections: list[dict] = field(default_factory=list)


def read_explanations(reports_dir: Path, version: str) -> dict[int, ImageExplanation]:
    """Per catalog image id, the latest explanation of ``version`` (any method or layer);
    entries whose map file is gone are left out. Empty when `wb explain` never ran."""
    root = Path(reports_dir) / "explain" / version
    best: dict[int, ImageExplanation] = {}
    for path in sorted(root.glob(f"*/{INDEX}")):
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        by_image: dict[str, list[dict]] = {}
        for d in index.get("detections", []):
            by_image.setdefault(d["image"], []).append(d)
        for im in index.get("images", []):
            image_id = im.get("image_id")
            if image_id is None or not im.get("heatmap"):
                continue
            heatmap = path.parent / im["heatmap"]
            if not heatmap.is_file():
                continue
            created = im.get("created") or index.get("created", "")
            seen = best.get(image_id)
            if seen is not None and seen.created >= created:
                continue
            best[image_id] = ImageExplanation(
                str(heatmap),
                index.get("method", ""),
                index.get("layer", ""),
                created,
                by_image.get(im["image"], []),
            )
    return best
