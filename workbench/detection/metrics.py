"""Detection metrics on plain data: pycocotools COCOeval plus the study's image accuracy.

Shape (FiftyOne's): an ``EvaluationConfig`` (parameters + method name) is run by a
method (``COCOEvaluation.evaluate``) into an ``EvaluationResult`` that serialises to
a dict and rebuilds from it. ``evaluate_detections`` is the one-call entry point.

What is measured, and on which detections:

- **mAP@0.5, mAP@[.5:.95], mAR@100, per-class AP@0.5 and AR@100** come from
  pycocotools ``COCOeval`` (the reference implementation) on *every* detection the
  model returned; the score threshold does not apply (a COCO curve needs the
  low-score tail).
- **Image accuracy** (the study's rule): an image's predicted label is the class of
  its highest-scoring detection with ``score >= score_threshold``; an image with no
  such detection is predicted ``background``. The image is correct when the predicted
  label equals its image-level label (already mapped to the model's level). An image
  without an image-level label takes the most common class of its ground-truth boxes,
  or ``background`` when it has none (an image with neither a label nor known boxes
  is left out). So a background-only image with no confident
  detection counts as correct, and an image of a real class with no confident
  detection counts as wrong. Per-class accuracy is the fraction correct among the
  images *labelled* with that class.
- **Confusion matrix**: ground-truth boxes against detections with
  ``score >= score_threshold``, matched class-agnostically per image (detections in
  descending score order, each taking the unmatched ground-truth box of highest IoU,
  if that IoU >= ``iou_threshold``). Rows are the ground-truth class, columns the
  predicted class; the extra ``background`` row holds detections that matched nothing
  (false positives) and the ``background`` column ground-truth boxes that nothing
  matched (misses).

A value that cannot be computed (a class without ground-truth boxes has no AP, a class
without images has no accuracy) is ``None``, never ``-1``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import check_choice
from ..taxonomy import image_level_label

logger = logging.getLogger(__name__)

BACKGROUND = "background"  # the same reserved name as workbench.taxonomy.BACKGROUND
METHODS = ("coco",)


def format_metric(value: Any, missing: str = "-") -> str:
    """A metric as tables and step lines print it: three decimals for a fraction,
    counts as they are, ``missing`` for a value that could not be computed (None)."""
    if value is None:
        return missing
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@dataclass
class EvaluationConfig:
    """Parameters of one evaluation; stored inside its results so they can be rebuilt."""

    classes: list[str]
    score_threshold: float = 0.5
    iou_threshold: float = 0.5  # confusion-matrix matching (COCOeval uses its own IoUs)
    method: str = "coco"

    def __post_init__(self) -> None:
        check_choice("evaluation method", self.method, METHODS)
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be within [0, 1], got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be within (0, 1], got {self.iou_threshold}")
        if BACKGROUND in self.classes:
            raise ValueError(f"'{BACKGROUND}' is reserved; it is not a detection class")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes repeat: {self.classes}")


@dataclass
class ImageOutcome:
    """One image's image-level result (for review and error lists)."""

    image: str
    label: str
    predicted: str
    score: float | None
    correct: bool


@dataclass
class EvaluationResult:
    """Everything one evaluation measured. ``metrics`` is the `wb evaluate --json` shape."""

    config: EvaluationConfig
    images: int
    mAP50: float | None
    mAP: float | None
    mAR100: float | None
    accuracy: float | None
    per_class: dict[str, dict[str, Any]]
    confusion_labels: list[str]
    confusion_matrix: list[list[int]]
    image_outcomes: list[ImageOutcome] = field(default_factory=list)
    gt_boxes: int = 0
    detections: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    split: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # source path, format, ...

    @property
    def metrics(self) -> dict[str, Any]:
        """The headline figures, in the `wb evaluate --json` shape (with extra keys)."""
        return {
            "model": self.model,
            "split": self.split,
            "images": self.images,
            "mAP50": self.mAP50,
            "mAP": self.mAP,
            "mAR100": self.mAR100,
            "per_class": {c: dict(v) for c, v in self.per_class.items()},
            "accuracy": self.accuracy,
            "score_threshold": self.config.score_threshold,
            "gt_boxes": self.gt_boxes,
            "detections": self.detections,
            "confusion_matrix": {
                "labels": list(self.confusion_labels),
                "matrix": [list(r) for r in self.confusion_matrix],
            },
            **({"ignored": dict(self.ignored)} if self.ignored else {}),
            **self.info,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationResult:
        d = dict(d)
        d["config"] = EvaluationConfig(**d["config"])
        d["image_outcomes"] = [ImageOutcome(**o) for o in d.get("image_outcomes", [])]
        return cls(**d)

    def errors(self) -> list[ImageOutcome]:
        """Images whose predicted label is wrong, most confident mistakes first."""
        wrong = [o for o in self.image_outcomes if not o.correct]
        return sorted(wrong, key=lambda o: -(o.score or 0.0))


# ---- inputs -------------------------------------------------------------------
def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _xyxy(obj: Any) -> tuple[float, float, float, float]:
    return (
        float(_field(obj, "x1")),
        float(_field(obj, "y1")),
        float(_field(obj, "x2")),
        float(_field(obj, "y2")),
    )


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4 xyxy) with every box in ``b`` (M,4 xyxy)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def box_outcomes(
    detections: Sequence[tuple[str, Sequence[float], float]],
    truth: Sequence[tuple[str, Sequence[float]]],
    iou_threshold: float = 0.5,
) -> list[str]:
    """``"tp"`` or ``"fp"`` per detection ``(label, xyxy, score)`` against one image's
    ground truth ``(label, xyxy)``, COCO's class-wise rule (FiftyOne's in `wb review`):
    in descending score order each detection takes the unmatched box of its class with the
    highest IoU, if that IoU >= ``iou_threshold``. Returned in the detections' order."""
    order = sorted(range(len(detections)), key=lambda j: -detections[j][2])
    ious = _iou_matrix(
        np.array([b for _, b, _s in detections], dtype=float).reshape(-1, 4),
        np.array([b for _, b in truth], dtype=float).reshape(-1, 4),
    )
    taken = [False] * len(truth)
    out = ["fp"] * len(detections)
    for j in order:
        best, best_iou = -1, iou_threshold
        for i, (label, _) in enumerate(truth):
            if not taken[i] and label == detections[j][0] and ious[j, i] >= best_iou:
                best, best_iou = i, ious[j, i]
        if best >= 0:
            taken[best] = True
            out[j] = "tp"
    return out


DIGITS = 6  # figures are rounded: pycocotools' means of ones come out as 0.9999999999999999


def _none_if_missing(x: float) -> float | None:
    x = float(x)
    return None if x < 0 or np.isnan(x) else round(x, DIGITS)


# ---- the method -----------------------------------------------------------------
class COCOEvaluation:
    """COCO-style evaluation (pycocotools) plus image accuracy and a confusion matrix."""

    def __init__(self, config: EvaluationConfig):
        self.config = config

    def evaluate(
        self,
        gt: Mapping[Hashable, Iterable[Any]],
        predictions: Mapping[Hashable, Iterable[Any]],
        image_labels: Mapping[Hashable, str | None] | None = None,
    ) -> EvaluationResult:
        """``gt``: image key -> boxes (anything with label, x1, y1, x2, y2, as attributes
        or keys); every evaluated image must be a key, even with no boxes (``[]``: a
        negative). ``None`` means its boxes are unknown (folder-per-class sets): it then
        counts for image accuracy only. ``predictions``:
        image key -> detections (the same plus ``score``); images missing here had none.
        ``image_labels``: image key -> image-level label at the model's level (or None)."""
        classes = list(self.config.classes)
        known = set(classes)
        keys = list(gt)
        # boxes None: the source only knows the image's label (folder-per-class), so the
        # image counts for image accuracy but not for the box metrics
        box_keys = [k for k in keys if gt[k] is not None]
        image_labels = image_labels or {}
        ignored: Counter[str] = Counter()

        gt_boxes: dict[Hashable, list[tuple[str, tuple]]] = {}
        for k in keys:
            kept = []
            for b in gt[k] or ():
                label = _field(b, "label")
                if label in known:
                    kept.append((label, _xyxy(b)))
                else:
                    ignored["gt_boxes_outside_classes"] += 1
            gt_boxes[k] = kept
        dets: dict[Hashable, list[tuple[str, tuple, float]]] = {k: [] for k in keys}
        for k, items in predictions.items():
            if k not in dets:
                ignored["detections_on_unknown_images"] += sum(1 for _ in items)
                continue
            for d in items:
                label = _field(d, "label")
                if label in known:
                    dets[k].append((label, _xyxy(d), float(_field(d, "score"))))
                else:
                    ignored["detections_outside_classes"] += 1

        coco = self._coco_figures(box_keys, gt_boxes, dets, classes)
        outcomes = self._image_outcomes(
            keys, gt_boxes, dets, image_labels, boxes_known=set(box_keys)
        )
        cm_labels, cm = self._confusion(box_keys, gt_boxes, dets, classes)
        if len(outcomes) < len(keys):
            ignored["images_without_label_or_boxes"] = len(keys) - len(outcomes)
        if ignored:
            logger.warning("evaluation ignored %s", dict(ignored))

        per_class: dict[str, dict[str, Any]] = {}
        by_label: dict[str, list[bool]] = {}
        for o in outcomes:
            by_label.setdefault(o.label, []).append(o.correct)
        gt_counts = Counter(lbl for boxes in gt_boxes.values() for lbl, _ in boxes)
        for c in classes + sorted(set(by_label) - known):
            hits = by_label.get(c, [])
            per_class[c] = {
                "AP50": coco["per_class"].get(c, {}).get("AP50"),
                "AR100": coco["per_class"].get(c, {}).get("AR100"),
                "accuracy": round(sum(hits) / len(hits), DIGITS) if hits else None,
                "images": len(hits),
                "gt_boxes": gt_counts.get(c, 0),
            }
        return EvaluationResult(
            config=self.config,
            images=len(keys),
            mAP50=coco["mAP50"],
            mAP=coco["mAP"],
            mAR100=coco["mAR100"],
            accuracy=(
                round(sum(o.correct for o in outcomes) / len(outcomes), DIGITS)
                if outcomes
                else None
            ),
            per_class=per_class,
            confusion_labels=cm_labels,
            confusion_matrix=cm,
            image_outcomes=outcomes,
            gt_boxes=sum(gt_counts.values()),
            detections=sum(len(v) for v in dets.values()),
            ignored=dict(ignored),
            info={"images_with_boxes": len(box_keys)} if len(box_keys) < len(keys) else {},
        )

    # -- steps ------------------------------------------------------------------
    def _coco_figures(self, keys, gt_boxes, dets, classes) -> dict[str, Any]:
        """pycocotools on in-memory COCO objects (bbox xywh, 1-based ids: id 0 breaks
        COCOeval's matching)."""
        n_gt = sum(len(v) for v in gt_boxes.values())
        n_det = sum(len(v) for v in dets.values())
        present = {lbl for boxes in gt_boxes.values() for lbl, _ in boxes}
        if n_gt == 0:
            # nothing to find: AP and AR are undefined
            return {"mAP50": None, "mAP": None, "mAR100": None, "per_class": {}}
        if n_det == 0:
            # COCOeval cannot load an empty result list; with boxes to find and no
            # detections every defined AP and AR is 0
            return {
                "mAP50": 0.0,
                "mAP": 0.0,
                "mAR100": 0.0,
                "per_class": {c: {"AP50": 0.0, "AR100": 0.0} for c in present},
            }

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        cat_id = {c: i + 1 for i, c in enumerate(classes)}
        img_id = {k: i + 1 for i, k in enumerate(keys)}
        images, annotations, results = [], [], []
        for k in keys:
            boxes = gt_boxes[k]
            xs = [v for _, b in boxes for v in (b[0], b[2])] + [
                v for _, b, _s in dets[k] for v in (b[0], b[2])
            ]
            ys = [v for _, b in boxes for v in (b[1], b[3])] + [
                v for _, b, _s in dets[k] for v in (b[1], b[3])
            ]
            # COCOeval never reads image sizes for bbox IoU; keep them plausible anyway
            images.append(
                {"id": img_id[k], "width": max(xs, default=1), "height": max(ys, default=1)}
            )
            for label, (x1, y1, x2, y2) in boxes:
                w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": img_id[k],
                        "category_id": cat_id[label],
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
            for label, (x1, y1, x2, y2), score in dets[k]:
                results.append(
                    {
                        "image_id": img_id[k],
                        "category_id": cat_id[label],
                        "bbox": [x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)],
                        "score": score,
                    }
                )
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):  # pycocotools prints progress to stdout
            coco_gt = COCO()
            coco_gt.dataset = {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": i, "name": c} for c, i in cat_id.items()],
            }
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(results)
            ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        precision = ev.eval["precision"]  # [T, R, K, A, M]
        recall = ev.eval["recall"]  # [T, K, A, M]
        t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
        a_all = ev.params.areaRngLbl.index("all")
        m100 = ev.params.maxDets.index(100)
        per_class = {}
        for ki, cid in enumerate(ev.params.catIds):
            c = classes[cid - 1]
            p = precision[t50, :, ki, a_all, m100]
            r = recall[:, ki, a_all, m100]
            per_class[c] = {
                "AP50": _none_if_missing(p.mean()) if (p > -1).all() and p.size else None,
                "AR100": _none_if_missing(r.mean()) if (r > -1).all() and r.size else None,
            }
        return {
            "mAP": _none_if_missing(ev.stats[0]),
            "mAP50": _none_if_missing(ev.stats[1]),
            "mAR100": _none_if_missing(ev.stats[8]),
            "per_class": per_class,
        }

    def _image_outcomes(
        self, keys, gt_boxes, dets, image_labels, boxes_known
    ) -> list[ImageOutcome]:
        thr = self.config.score_threshold
        out = []
        for k in keys:
            label = image_labels.get(k)
            if label is None and k not in boxes_known:
                continue  # neither a label nor boxes: nothing to be right about
            label = image_level_label(label, (lbl for lbl, _ in gt_boxes[k]))
            confident = [d for d in dets[k] if d[2] >= thr]
            if confident:
                top = max(confident, key=lambda d: d[2])
                predicted, score = top[0], top[2]
            else:
                predicted, score = BACKGROUND, None
            out.append(
                ImageOutcome(
                    image=str(k),
                    label=label,
                    predicted=predicted,
                    score=score,
                    correct=predicted == label,
                )
            )
        return out

    def _confusion(self, keys, gt_boxes, dets, classes) -> tuple[list[str], list[list[int]]]:
        labels = classes + [BACKGROUND]
        index = {c: i for i, c in enumerate(labels)}
        bg = index[BACKGROUND]
        cm = np.zeros((len(labels), len(labels)), dtype=int)
        thr, iou_thr = self.config.score_threshold, self.config.iou_threshold
        for k in keys:
            g = gt_boxes[k]
            d = sorted((x for x in dets[k] if x[2] >= thr), key=lambda x: -x[2])
            ious = _iou_matrix(
                np.array([b for _, b in g], dtype=float).reshape(-1, 4),
                np.array([b for _, b, _s in d], dtype=float).reshape(-1, 4),
            )
            taken = np.zeros(len(g), dtype=bool)
            for j, (pred_label, _, _) in enumerate(d):
                best, best_iou = -1, iou_thr
                for i in range(len(g)):
                    if not taken[i] and ious[i, j] >= best_iou:
                        best, best_iou = i, ious[i, j]
                if best >= 0:
                    taken[best] = True
                    cm[index[g[best][0]], index[pred_label]] += 1
                else:
                    cm[bg, index[pred_label]] += 1
            for i in np.flatnonzero(~taken):
                cm[index[g[i][0]], bg] += 1
        return labels, cm.tolist()


def evaluate_detections(
    gt: Mapping[Hashable, Iterable[Any]],
    predictions: Mapping[Hashable, Iterable[Any]],
    classes: list[str],
    image_labels: Mapping[Hashable, str | None] | None = None,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    method: str = "coco",
) -> EvaluationResult:
    """Evaluate detections against ground truth (see the module docstring for the rules).

    >>> from workbench.catalog.records import Box
    >>> r = evaluate_detections({"a.jpg": [Box("cat", 0, 0, 10, 10)]},
    ...     {"a.jpg": [{"label": "cat", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "score": 0.9}]},
    ...     classes=["cat"])
    >>> r.mAP50, r.accuracy, r.per_class["cat"]["AP50"]
    (1.0, 1.0, 1.0)
    """
    config = EvaluationConfig(
        classes=list(classes),
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        method=method,
    )
    return COCOEvaluation(config).evaluate(gt, predictions, image_labels)
