"""One `wb explain` run, as a list of steps: model -> images -> per image the boxes and
their heatmaps -> the inside-box check -> pictures -> run.json, explain.json, index.html.

Images come from a path (a file or a folder, searched recursively) or as catalog ids (a
saved review view, resolved by the caller). An image the catalog knows is named by its
id, and its boxes are marked TP/FP when it is annotated. Unreadable images are skipped
and returned, each with its reason; the photos are only read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError, check_choice
from ..fsutil import atomic_write_json
from ..images import UnreadableImage, is_image_file, open_image
from ..labelstudio.tasks import DISPLAY_MIN_SCORE
from .cam import DEFAULT_METHOD, METHODS
from .evidence import DEFAULT_MIN_INSIDE_SHARE, box_area_share, flagged_by_class, is_flagged
from .evidence import inside_share as energy_inside
from .store import RUN, image_key, merge_index, run_folder

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
SkipFn = Callable[[str, str], None]  # (path, reason)


@dataclass(frozen=True)
class ImageToExplain:
    path: str
    image_id: int | None = None


def images_at(path: str | Path) -> list[ImageToExplain]:
    """A file, or the image files in a folder and its subfolders (sorted)."""
    p = Path(path).expanduser()
    if p.is_file():
        return [ImageToExplain(str(p.resolve()))]
    if p.is_dir():
        return [
            ImageToExplain(str(f.resolve()))
            for f in sorted(p.rglob("*"))
            if f.is_file() and is_image_file(f)
        ]
    raise WorkbenchError(f"--images {path}: no such file or folder")


def with_catalog_ids(catalog, items: list[ImageToExplain]) -> list[ImageToExplain]:
    """The catalog's id for each image it holds (by path), so review can attach them."""
    out = []
    for it in items:
        if it.image_id is None:
            rec = catalog.get_image_by_path(it.path)
            it = ImageToExplain(it.path, rec.id if rec else None)
        out.append(it)
    return out


@dataclass
class ExplainRun:
    version: str
    backbone: str
    method: str
    layer: str
    min_score: float
    min_inside_share: float
    folder: Path
    created: str
    images: list[dict] = field(default_factory=list)
    detections: list[dict] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)  # {"path", "reason"}
    seconds: float = 0.0
    sheet: Path | None = None

    @property
    def per_class(self) -> dict[str, dict]:
        return flagged_by_class(self.detections)

    @property
    def flagged(self) -> int:
        return sum(1 for d in self.detections if d["flagged"])

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "backbone": self.backbone,
            "method": self.method,
            "layer": self.layer,
            "min_score": self.min_score,
            "min_inside_share": self.min_inside_share,
            "created": self.created,
            "folder": str(self.folder),
            "sheet": str(self.sheet) if self.sheet else None,
            "images": self.images,
            "detections": self.detections,
            "per_class": self.per_class,
            "unreadable": self.unreadable,
            "seconds": round(self.seconds, 2),
        }


def _truth(ws, catalog, image_id: int | None, level: str) -> list | None:
    """The image's ground-truth boxes at the model's level; None when not annotated."""
    if image_id is None:
        return None
    rec = catalog.get_image(image_id)
    if rec is None or not rec.annotated:
        return None
    return [
        (ws.taxonomy.to_level(b.label, level, unknown="keep"), (b.x1, b.y1, b.x2, b.y2))
        for b in catalog.boxes_for(image_id)
    ]


def explain_images(
    ws,
    catalog,
    items: list[ImageToExplain],
    version: str | None = None,
    method: str = DEFAULT_METHOD,
    layer: str | None = None,
    min_score: float = DISPLAY_MIN_SCORE,
    min_inside_share: float = DEFAULT_MIN_INSIDE_SHARE,
    on_progress: ProgressFn | None = None,
    on_skip: SkipFn | None = None,
    predictor=None,
) -> ExplainRun:
    """Explain ``version``'s (default: the promoted model's) boxes on ``items``."""
    check_choice("method", method, list(METHODS))  # before loading any model
    started = time.monotonic()
    from ..detection.backbones import default_cam_layer
    from ..detection.metrics import box_outcomes
    from ..detection.registry import Registry
    from .cam import Explainer
    from .pictures import write_map, write_overlay, write_sheet

    mv = Registry.of(ws, catalog).resolve(version)
    if predictor is None:
        from ..detection.predict import Predictor

        predictor = Predictor(mv.path)
    explainer = Explainer(predictor, method, layer, min_score)
    backbone = predictor.config.backbone
    folder = run_folder(
        ws.reports_dir, mv.version, method, explainer.layer, default_cam_layer(backbone)
    )
    level = mv.level or ws.model_level()
    run = ExplainRun(
        mv.version,
        backbone,
        method,
        explainer.layer,
        min_score,
        min_inside_share,
        folder,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    for n, item in enumerate(items, start=1):
        try:
            image = open_image(item.path)
        except UnreadableImage as exc:
            run.unreadable.append({"path": item.path, "reason": exc.reason})
            if on_skip is not None:
                on_skip(item.path, exc.reason)
            if on_progress is not None:
                on_progress(n, len(items))
            continue
        key = image_key(item.image_id, item.path)
        entry = {
            "image": key,
            "image_id": item.image_id,
            "path": item.path,
            "width": image.width,
            "height": image.height,
            "created": run.created,
            "heatmap": None,
        }
        for old in (folder / "boxes").glob(f"{key}-*.png"):
            old.unlink()  # our own pictures of an earlier run; never a user's file
        rows, image_map = [], None
        for k, b in enumerate(explainer.iter_explain(image)):
            if k == 0:
                (folder / "boxes").mkdir(parents=True, exist_ok=True)
                (folder / "maps").mkdir(parents=True, exist_ok=True)
            share = energy_inside(b.heatmap, b.box)
            flagged = is_flagged(share, min_inside_share)
            png = folder / "boxes" / f"{key}-{k}.png"
            write_overlay(image, b.heatmap, b.box, f"{b.label} {b.score:.2f}", bool(flagged), png)
            image_map = b.heatmap if image_map is None else np.maximum(image_map, b.heatmap)
            rows.append(
                {
                    "image": key,
                    "image_id": item.image_id,
                    "path": item.path,
                    "label": b.label,
                    "score": round(b.score, 4),
                    "box": list(b.box),
                    "inside_share": None if share is None else round(share, 4),
                    "box_area_share": round(box_area_share(b.box, *image.size), 4),
                    "flagged": flagged,
                    "outcome": None,
                    "png": str(png),
                }
            )
        if rows:
            truth = _truth(ws, catalog, item.image_id, level)
            if truth is not None:
                found = [(r["label"], r["box"], r["score"]) for r in rows]
                for r, outcome in zip(rows, box_outcomes(found, truth)):
                    r["outcome"] = outcome
            write_map(image_map, folder / "maps" / f"{key}.png")
            entry["heatmap"] = f"maps/{key}.png"
            run.detections += rows
        run.images.append(entry)
        if on_progress is not None:
            on_progress(n, len(items))
    run.seconds = time.monotonic() - started
    if run.detections or folder.is_dir():  # nothing found and never run: nothing written
        run.sheet = write_sheet(run.to_json(), folder)
        atomic_write_json(folder / RUN, run.to_json())
        merge_index(folder, run.to_json())
    return run
