"""Catalog images <-> Label Studio tasks and results. Pure functions, no I/O.

Label Studio rectangles are in percent (0-100) of the image as the browser shows
it, i.e. after EXIF orientation: exactly the catalog's width and height.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from ..catalog.records import Box, ImageRecord
from ..errors import WorkbenchError
from ..geometry import iou_xyxy, match_boxes
from ..taxonomy import Taxonomy
from .config import FROM_NAME as FROM_NAME  # re-exported: our config's names
from .config import TO_NAME as TO_NAME
from .config import ControlMapping, detection_config, parse_label_config

log = logging.getLogger(__name__)

LOCAL_FILES_PREFIX = "/data/local-files/?d="
IMAGE_ID_FIELD = "wb_image_id"  # task data: the catalog image id (reconciliation key)
# Pre-drawn boxes below this score are not shown to annotators (an early model emits
# up to 100 faint boxes per image); uncertainty still uses every box. The one floor:
# the ML backend (`wb serve --min-score`) and the prioritize page import it.
DISPLAY_MIN_SCORE = 0.3


class ImageOutsideRoot(WorkbenchError):
    """An image does not lie under the folder Label Studio serves."""


@dataclass
class ModelPrediction:
    """One image's detections by one model version (pixel xyxy dicts)."""

    model_version: str
    boxes: list[dict]
    uncertainty: float | None = None  # from `priorities`, when computed


def image_url(path: str | Path, document_root: Path) -> str:
    """The local-files URL Label Studio serves ``path`` under."""
    p = Path(path).resolve()
    try:
        rel = p.relative_to(document_root)
    except ValueError:
        raise ImageOutsideRoot(
            f"{p} lies outside the folder Label Studio serves ({document_root}). Restart the "
            "local server so it serves the images' common folder (`wb ls stop && wb ls start`), "
            "or for your own server set [labelstudio] document_root / WB_LS_DOCUMENT_ROOT to its "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT."
        ) from None
    return LOCAL_FILES_PREFIX + quote(rel.as_posix(), safe="/")


def to_class(label: str | None, classes: list[str], level: str, taxonomy: Taxonomy) -> str | None:
    """A label mapped onto the classes of the config `wb push` writes, or None when it
    has no place there (``ControlMapping.label_for`` on that config)."""
    return project_mapping(classes, level, taxonomy).label_for(label)


@lru_cache(maxsize=16)
def _our_mapping(classes: tuple[str, ...], level: str, taxonomy: Taxonomy) -> ControlMapping:
    control = parse_label_config(detection_config(list(classes))).controls[0]
    return ControlMapping.build(control, taxonomy, level)


def project_mapping(
    classes, level: str, taxonomy: Taxonomy, mapping: ControlMapping | None = None
) -> ControlMapping:
    """``mapping`` when given (the project's, ``Project.mapping``), else the one of the
    config `wb push` writes over ``classes``: each class onto itself, a finer label onto
    its class at ``level`` (what ``to_class`` does)."""
    return mapping if mapping is not None else _our_mapping(tuple(classes), level, taxonomy)


def percent_rect(box: dict, width: int, height: int) -> dict:
    """Pixel xyxy (clipped to the image) -> Label Studio percent x/y/width/height."""
    x1 = min(max(float(box["x1"]), 0.0), width)
    y1 = min(max(float(box["y1"]), 0.0), height)
    x2 = min(max(float(box["x2"]), 0.0), width)
    y2 = min(max(float(box["y2"]), 0.0), height)
    return {
        "x": x1 / width * 100.0,
        "y": y1 / height * 100.0,
        "width": (x2 - x1) / width * 100.0,
        "height": (y2 - y1) / height * 100.0,
        "rotation": 0,
    }


def task_score(boxes: list[dict], uncertainty: float | None) -> float | None:
    """Lower = asked first by uncertainty sampling: 1 - uncertainty when known,
    else the mean box score; None without either."""
    if uncertainty is not None:
        return max(0.0, min(1.0, 1.0 - float(uncertainty)))
    scores = [float(b["score"]) for b in boxes if b.get("score") is not None]
    return sum(scores) / len(scores) if scores else None


def rect_item(
    image: ImageRecord,
    box: dict,
    item_id: str,
    classes,
    level: str,
    taxonomy,
    what: str,
    mapping: ControlMapping | None = None,
) -> dict | None:
    """One rectangle of a prediction or annotation result, or None when its label has
    no label in the project (``mapping``, else our config over ``classes`` at ``level``)
    or it has no area inside the image."""
    mapping = project_mapping(classes, level, taxonomy, mapping)
    label = mapping.label_for(box.get("label"))
    if label is None:
        log.warning(
            "image %s: %s label %r has no label in the project (level %s); box left out",
            image.id,
            what,
            box.get("label"),
            level,
        )
        return None
    value = percent_rect(box, image.width, image.height)
    if value["width"] <= 0 or value["height"] <= 0:
        return None
    value["rectanglelabels"] = [label]
    return {
        "id": item_id,
        "from_name": mapping.control.name,
        "to_name": mapping.control.to_name,
        "type": "rectanglelabels",
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
        "value": value,
    }


def annotation_for(
    image: ImageRecord,
    boxes: list[Box],
    classes: list[str],
    level: str,
    taxonomy: Taxonomy,
    mapping: ControlMapping | None = None,
) -> dict:
    """The image's ground truth (boxes from an import, or a negative: no boxes) as a
    Label Studio annotation, so that annotators see and correct those boxes instead of
    drawing them again (a submitted annotation replaces all of an image's boxes)."""
    results = []
    for i, b in enumerate(boxes):
        box = {"label": b.label, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}
        item = rect_item(
            image, box, f"wb{image.id}t{i}", classes, level, taxonomy, "annotated", mapping
        )
        if item is not None:
            results.append(item)
    return {"result": results}


def prediction_for(
    image: ImageRecord,
    pred: ModelPrediction,
    classes: list[str],
    level: str,
    taxonomy: Taxonomy,
    mapping: ControlMapping | None = None,
) -> dict:
    """A Label Studio prediction: the model's boxes in percent, with scores, under the
    project's labels (``mapping``; see ``rect_item``)."""
    results = []
    for i, box in enumerate(pred.boxes):
        if box.get("score") is not None and float(box["score"]) < DISPLAY_MIN_SCORE:
            continue
        item = rect_item(
            image, box, f"wb{image.id}p{i}", classes, level, taxonomy, "predicted", mapping
        )
        if item is None:
            continue
        if box.get("score") is not None:
            item["score"] = float(box["score"])
        results.append(item)
    out = {"model_version": pred.model_version, "result": results}
    score = task_score(pred.boxes, pred.uncertainty)
    if score is not None:
        out["score"] = score
    return out


# Region ids of the boxes `wb review send likely-label-errors` adds to a task's prediction
# to mark a suspect label (``mark_suspects``): never counted as the model's pre-drawn boxes.
SUSPECT_ID_PREFIX = "wbsuspect"
SUSPECT_TEXT_PREFIX = "Suspect "  # a region's meta text written by ``mark_suspects``
MISSING_SAME_IOU = 0.9  # a 'missing' suspect and the model's box it came from


@dataclass(frozen=True)
class SuspectMarker:
    """One box to mark for the annotator: pixel xyxy ``box``, its label (catalog name),
    and the line Label Studio shows in the region's panel (``text``)."""

    kind: str
    score: float
    label: str
    box: tuple[float, float, float, float]
    text: str


def is_suspect_marker(item: dict) -> bool:
    """Whether a result item is a box ``mark_suspects`` added (not a model box)."""
    return str(item.get("id") or "").startswith(SUSPECT_ID_PREFIX)


def is_suspect_text(item: dict) -> bool:
    """Whether a result item carries a suspect's text (a marker, or a model box noted)."""
    return str((item.get("meta") or {}).get("text", "")).startswith(SUSPECT_TEXT_PREFIX)


def model_regions(result: list[dict] | None) -> list[dict]:
    """A prediction's result without the suspect markers: the boxes the model pre-drew."""
    return [r for r in result or [] if not is_suspect_marker(r)]


def _note_model_box(regions: list[dict], m: SuspectMarker, label, image: ImageRecord) -> bool:
    """Put ``m``'s text on the model region it came from (a 'missing' suspect is a model
    box); False when no region is that box."""
    for r in regions:
        drawn = result_boxes([r], image.width, image.height)
        if (
            drawn
            and "meta" not in r
            and drawn[0].label == label
            and iou_xyxy(drawn[0].xyxy, m.box) >= MISSING_SAME_IOU
        ):
            r["meta"] = {"text": m.text}
            return True
    return False


def mark_suspects(
    image: ImageRecord,
    result: list[dict] | None,
    markers: list[SuspectMarker],
    classes: list[str],
    level: str,
    taxonomy: Taxonomy,
    mapping: ControlMapping | None = None,
) -> list[dict]:
    """A prediction result with ``markers`` shown: the model's regions as they are (the
    markers of an earlier send dropped, so re-sending never doubles them), a 'missing'
    suspect as the meta text of the model box it came from (same label, IoU >=
    ``MISSING_SAME_IOU``), every other suspect (a ground-truth box) as an added
    rectangle with the project's label for it, id ``SUSPECT_ID_PREFIX...``, and the
    marker's text as the region's ``meta`` text (Label Studio shows it in the region's
    panel). The labels are the project's own: accepting a marker never adds a class."""
    mapping = project_mapping(classes, level, taxonomy, mapping)
    out = []
    for r in model_regions(result):
        r = dict(r)
        if is_suspect_text(r):
            r.pop("meta")
        out.append(r)
    for k, m in enumerate(markers):
        box = {"label": m.label, "x1": m.box[0], "y1": m.box[1], "x2": m.box[2], "y2": m.box[3]}
        if m.kind == "missing" and _note_model_box(out, m, mapping.label_for(m.label), image):
            continue
        item = rect_item(
            image,
            box,
            f"{SUSPECT_ID_PREFIX}{image.id}x{k}",
            classes,
            level,
            taxonomy,
            "suspect",
            mapping,
        )
        if item is not None:
            item["meta"] = {"text": m.text}
            out.append(item)
    return out


def truth_hint(image: ImageRecord, truth: list[Box]) -> str:
    """The header of a task that arrives already annotated."""
    if truth and all(b.source == "labelstudio" for b in truth):
        origin = "in Label Studio"
    elif image.source_format and image.source_format != "folders":
        origin = f"in the {image.source_format.upper()} import"
    else:
        origin = "earlier"
    if not truth:
        return f"Annotated {origin} as having no objects: add boxes if that is wrong"
    return f"Boxes annotated {origin}: check them, correct and press Update if wrong"


def build_task(
    image: ImageRecord,
    document_root: Path,
    classes: list[str],
    level: str,
    taxonomy: Taxonomy,
    pred: ModelPrediction | None = None,
    truth: list[Box] | None = None,
    mapping: ControlMapping | None = None,
) -> dict:
    """One task: the image URL, the image-level label as a hint, the model version,
    the catalog id, the model's boxes as a prediction when there is one, and the
    image's ground truth as an annotation when it has one (``truth``: its boxes,
    ``[]`` for a negative). ``mapping``: the project's labels and the task field of its
    image (someone else's project); None: the config `wb push` writes."""
    if not image.width or not image.height:
        raise WorkbenchError(
            f"image {image.id} ({image.path}) has no size in the catalog; re-ingest it"
        )
    mapping = project_mapping(classes, level, taxonomy, mapping)
    hint_label = mapping.label_for(image.label) or image.label
    version = pred.model_version if pred else None
    data = {
        mapping.control.data_key: image_url(image.path, document_root),
        IMAGE_ID_FIELD: image.id,
        "label": hint_label or "",
        "label_hint": f"Image label (hint): {hint_label}" if hint_label else "Image label: none",
        "model_version": version or "",
        "model_hint": (
            f"Boxes pre-drawn by model {version}" if version else "No model boxes yet: draw them"
        ),
    }
    if truth is not None:
        data["model_hint"] = truth_hint(image, truth) + (
            f"; model {version}'s boxes are under Predictions" if version else ""
        )
    task: dict = {"data": data}
    if pred is not None:
        task["predictions"] = [prediction_for(image, pred, classes, level, taxonomy, mapping)]
    if truth is not None:
        task["annotations"] = [annotation_for(image, truth, classes, level, taxonomy, mapping)]
    return task


def result_boxes(result: list[dict], width: int | None, height: int | None) -> list[Box]:
    """Label Studio rectangles -> pixel boxes (rotated ones by their bounding box)."""
    boxes = []
    for item in result or []:
        if item.get("type") != "rectanglelabels":
            continue
        v = item.get("value") or {}
        labels = v.get("rectanglelabels") or []
        if not labels:
            continue
        w = width or item.get("original_width")
        h = height or item.get("original_height")
        if not w or not h:
            raise WorkbenchError("an annotation has no image size to convert percent to pixels")
        x, y = float(v["x"]) / 100 * w, float(v["y"]) / 100 * h
        bw, bh = float(v["width"]) / 100 * w, float(v["height"]) / 100 * h
        angle = math.radians(float(v.get("rotation") or 0.0))
        if angle:
            # Label Studio rotates around the top-left corner
            c, s = math.cos(angle), math.sin(angle)
            xs = [x + dx * c - dy * s for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
            ys = [y + dx * s + dy * c for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
        else:
            xs, ys = [x, x + bw], [y, y + bh]
        x1, x2 = max(min(xs), 0.0), min(max(xs), float(w))
        y1, y2 = max(min(ys), 0.0), min(max(ys), float(h))
        if x2 <= x1 or y2 <= y1:
            continue
        boxes.append(Box(label=labels[0], x1=x1, y1=y1, x2=x2, y2=y2, source="labelstudio"))
    return boxes


def boxes_agree(a: list[Box], b: list[Box], iou_threshold: float = 0.5) -> bool:
    """Same number of boxes, and each pairs with one of the same label at IoU >= threshold
    (``geometry.match_boxes``, as `wb agreement` pairs them: agreement 1.0)."""
    if len(a) != len(b):
        return False
    labels = ([x.label for x in a], [y.label for y in b])
    return len(match_boxes([x.xyxy for x in a], [y.xyxy for y in b], iou_threshold, labels)) == len(
        a
    )


def same_boxes(a: list[Box], b: list[Box] | None, tolerance: float = 0.5) -> bool:
    """The same labelled boxes, each corner within ``tolerance`` pixels (the percent
    round trip through Label Studio; a box an annotator moved is not the same)."""

    def closeness(x: Box, y: Box) -> float | None:
        worst = max(abs(p - q) for p, q in zip(x.xyxy, y.xyxy))
        return -worst if worst <= tolerance else None

    return b is not None and _all_paired(a, b, closeness)


def _all_paired(a: list[Box], b: list[Box], closeness) -> bool:
    """Every box of ``a`` pairs with its own box of ``b`` of the same label, the closest
    by ``closeness(x, y)`` (None: not a match); same number of boxes."""
    if len(a) != len(b):
        return False
    unused = list(b)
    for box in a:
        scored = [
            (c, o)
            for o in unused
            if o.label == box.label
            for c in [closeness(box, o)]
            if c is not None
        ]
        if not scored:
            return False
        unused.remove(max(scored, key=lambda t: t[0])[1])
    return True
