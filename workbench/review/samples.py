"""What the review dataset should hold, read from the catalog as plain data.

One ``ReviewSample`` per image, with boxes already in FiftyOne's relative
``[x, y, width, height]`` and a content hash per field group, so the dataset
sync (``dataset.py``) can skip what has not changed. Nothing here imports fiftyone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field

from ..errors import WorkbenchError
from ..geometry import iou_xyxy
from ..taxonomy import Taxonomy

log = logging.getLogger(__name__)

# Images a reviewer may want to see: duplicates and conflicts too (next to the copy
# that was kept); unreadable and excluded images are left out.
REVIEW_STATUSES = ("active", "duplicate", "conflict")
GT_FIELD = "ground_truth"
BASE_GROUP = "base"
# Scalar sample fields, in the order the App's sidebar shows them.
SCALAR_FIELDS = (
    "image_label",
    "split",
    "status",
    "annotated",
    "dedup_group",
    "dedup_kind",
    "dedup_keep",
    "uncertainty",
    "priority_rank",
    "label_error_score",
)
LABEL_ERRORS_FIELD = "label_errors"  # the suspect boxes of `wb review errors`, kind as label


def field_key(version: str) -> str:
    """A model version as a FiftyOne field/eval-key fragment (letters, digits, _)."""
    key = re.sub(r"\W+", "_", version).strip("_")
    return key if key and not key[0].isdigit() else f"v{key}"


def pred_field(version: str) -> str:
    return f"pred_{field_key(version)}"


def heatmap_field(version: str) -> str:
    """The sample field holding `wb explain`'s heatmap of ``version`` (one per image)."""
    return f"heatmap_{field_key(version)}"


#: a stored prediction takes the explanation of the explained box it overlaps this much
#: (the same model on the same photo: the same box, up to batch padding)
EXPLAINED_BOX_IOU = 0.5


def attach_explanations(dets: list[dict], explained: list[dict]) -> list[dict]:
    """Stored predictions (catalog dicts) with ``cam_inside_share``, ``cam_flagged`` from
    the explained box of the same class that overlaps each most (greedy, highest score
    first); predictions no explained box matches are left as they are."""
    out = [dict(d) for d in dets]
    free = list(range(len(explained)))
    for d in sorted(out, key=lambda d: -(d.get("score") or 0.0)):
        box = (d["x1"], d["y1"], d["x2"], d["y2"])
        best, best_iou = None, EXPLAINED_BOX_IOU
        for j in free:
            e = explained[j]
            iou = iou_xyxy(box, e["box"]) if e["label"] == d["label"] else 0.0
            if iou >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            free.remove(best)
            d["cam_inside_share"] = explained[best]["inside_share"]
            d["cam_flagged"] = explained[best]["flagged"]
    return out


def relative_box(
    x1: float, y1: float, x2: float, y2: float, width: int, height: int
) -> list[float]:
    """Pixel xyxy (EXIF-corrected frame) -> FiftyOne relative [x, y, w, h]."""
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def content_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class ReviewSample:
    image_id: int
    filepath: str
    width: int | None
    height: int | None
    fields: dict
    ground_truth: list[dict] | None  # None: not annotated; [] annotated, no objects
    predictions: dict[str, list[dict] | None] = field(default_factory=dict)  # pred field -> boxes
    heatmaps: dict[str, dict | None] = field(default_factory=dict)  # heatmap field -> map
    label_errors: list[dict] | None = None  # suspect boxes; None: not checked

    def hashes(self) -> dict[str, str]:
        """Content hash per field group: ``base`` (file and scalars), ``ground_truth``,
        and one per predictions field."""
        out = {
            BASE_GROUP: content_hash([self.filepath, self.width, self.height, self.fields]),
            GT_FIELD: content_hash(self.ground_truth),
        }
        for name, boxes in self.predictions.items():
            out[name] = content_hash(boxes)
        for name, heatmap in self.heatmaps.items():
            out[name] = content_hash(heatmap)
        out[LABEL_ERRORS_FIELD] = content_hash(self.label_errors)
        return out


def _mapped(taxonomy: Taxonomy, label: str, level: str) -> str:
    return taxonomy.to_level(label, level, unknown="keep")


def _dedup_membership(catalog) -> dict[int, dict]:
    """image id -> its duplicate group (a conflict group wins over a duplicate group)."""
    out: dict[int, dict] = {}
    groups = sorted(catalog.dup_groups(), key=lambda g: (g.kind != "conflict", g.id))
    for g in groups:
        for m in g.members:
            out.setdefault(
                m.image_id, {"dedup_group": g.id, "dedup_kind": g.kind, "dedup_keep": bool(m.keep)}
            )
    return out


def _uncertainty(catalog, version: str | None) -> tuple[str | None, dict[int, tuple[float, int]]]:
    """Uncertainty and rank per image from ``version``'s priorities, or from the
    version prioritised last when ``version`` has none."""
    rows = catalog.priorities(version) if version is not None else []
    if not rows:
        version = catalog.latest_prioritized_version()
        rows = catalog.priorities(version) if version is not None else []
    if not rows:
        return None, {}
    return version, {r.image_id: (r.uncertainty, r.rank) for r in rows}


def read_review_samples(
    catalog,
    taxonomy: Taxonomy,
    level: str,
    versions: list[str],
    uncertainty_version: str | None = None,
    explained: tuple[str, dict] | None = None,
    label_errors=None,
) -> tuple[list[ReviewSample], str | None]:
    """The samples the review dataset should hold, and the version whose uncertainty
    they carry (``None`` when nothing was prioritised). ``explained``: ``(version,
    {image id: explain.store.ImageExplanation})``, what `wb explain` wrote for the
    version the views are about; those samples get its heatmap and their boxes its
    inside-box share and flag. ``label_errors``: a ``label_errors.LabelErrorReport`` of
    the version the views are about; the images it scored get their suspect boxes
    (``label_errors``, kind as label, score as confidence) and ``label_error_score``."""
    images = catalog.images(status=REVIEW_STATUSES)
    boxes = catalog.boxes_by_image([im.id for im in images])
    dedup = _dedup_membership(catalog)
    unc_version, uncertainty = _uncertainty(catalog, uncertainty_version)
    predictions = {v: catalog.predictions(v) for v in versions}
    names = {v: pred_field(v) for v in versions}
    if len(set(names.values())) != len(names):
        raise WorkbenchError(
            f"model versions {versions} map to the same FiftyOne field names; rename one of them"
        )

    explained_version, explanations = explained or (None, {})
    suspects: dict[int, list] = {}
    for sus in label_errors.suspects if label_errors is not None else []:
        suspects.setdefault(sus.image_id, []).append(sus)
    error_scores = label_errors.image_scores if label_errors is not None else {}
    out = []
    for im in images:
        w, h = im.width, im.height
        sized = bool(w and h)
        if not sized:
            log.warning(
                "image %d (%s) has no size in the catalog; its boxes are left out", im.id, im.path
            )
        unc = uncertainty.get(im.id)
        fields = {
            "image_label": im.label,
            "split": im.split,
            "status": im.status,
            "annotated": bool(im.annotated),
            **dedup.get(im.id, {"dedup_group": None, "dedup_kind": None, "dedup_keep": None}),
            "uncertainty": unc[0] if unc else None,
            "priority_rank": unc[1] if unc else None,
            "label_error_score": error_scores.get(im.id),
        }
        gt = None
        if im.annotated and sized:
            gt = [
                {
                    "label": _mapped(taxonomy, b.label, level),
                    "bounding_box": relative_box(b.x1, b.y1, b.x2, b.y2, w, h),
                    "annotator": b.annotator,
                }
                for b in boxes.get(im.id, [])
            ]
        preds: dict[str, list[dict] | None] = {}
        heatmaps: dict[str, dict | None] = {}
        explanation = explanations.get(im.id)
        for v in versions:
            dets = predictions[v].get(im.id)
            if v == explained_version:
                heatmaps[heatmap_field(v)] = (
                    None
                    if explanation is None
                    else {
                        "map_path": explanation.heatmap,
                        "method": explanation.method,
                        "layer": explanation.layer,
                    }
                )
                if explanation is not None and dets is not None:
                    dets = attach_explanations(dets, explanation.detections)
            preds[names[v]] = (
                None
                if dets is None or not sized
                else [
                    {
                        "label": _mapped(taxonomy, d["label"], level),
                        "bounding_box": relative_box(d["x1"], d["y1"], d["x2"], d["y2"], w, h),
                        "confidence": d.get("score"),
                        "probs": d.get("probs") or {},
                        **{k: d[k] for k in ("cam_inside_share", "cam_flagged") if k in d},
                    }
                    for d in dets
                ]
            )
        errors = None
        if label_errors is not None and sized and im.id in label_errors.checked:
            errors = [
                {
                    "label": sus.kind,
                    "bounding_box": relative_box(*sus.box, w, h),
                    "confidence": sus.score,
                    "gt_label": sus.label,
                    "predicted": sus.predicted,
                }
                for sus in suspects.get(im.id, [])
            ]
        out.append(ReviewSample(im.id, im.path, w, h, fields, gt, preds, heatmaps, errors))
    return out, unc_version


def sample_counts(samples: list[ReviewSample]) -> dict:
    """What a build writes, for the progress it shows (FiftyOne stores every box as its own
    document, so the time grows with the boxes): images, ground-truth boxes, predicted
    boxes over all versions, and the versions."""
    return {
        "images": len(samples),
        "annotated": sum(1 for s in samples if s.ground_truth is not None),
        "gt_boxes": sum(len(s.ground_truth or []) for s in samples),
        "predicted_boxes": sum(len(b or []) for s in samples for b in s.predictions.values()),
        "versions": len({name for s in samples for name in s.predictions}),
    }
