"""Label-error scores: where the ground truth and the promoted model's predictions disagree.

Pure and torch-free: boxes in, scored suspects out. Four kinds, each scored in [0, 1]:

- ``missing``: a confident prediction that overlaps no ground-truth box (IoU < ``band_low``);
  score = the prediction's confidence.
- ``extra``: a ground-truth box no prediction supports; score = 1 - the best support,
  support = min(1, IoU / ``band_low``) * confidence, over predictions of any class
  (a box some prediction overlaps is a class or place error, not an extra box).
- ``wrong_class``: a prediction of another class matched (IoU >= ``match_iou``) to the box;
  score = max(0, p(predicted class) - p(ground-truth class)) from the stored ``probs``.
- ``localisation``: the best same-class IoU lies in [``band_low``, ``match_iou``);
  score = confidence * (match_iou - IoU) / (match_iou - band_low).

An image's score combines its suspects as a noisy-or: 1 - prod(1 - s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..catalog.records import Box
from ..errors import InvalidChoice, WorkbenchError
from ..geometry import iou_xyxy

KINDS = ("missing", "extra", "wrong_class", "localisation")
MATCH_IOU = 0.5
BAND_LOW = 0.1
MIN_CONFIDENCE = 0.5
MIN_SCORE = 0.3
TOP = 20  # rows `wb review errors` lists by default


@dataclass(frozen=True)
class Thresholds:
    match_iou: float = MATCH_IOU
    band_low: float = BAND_LOW
    min_confidence: float = MIN_CONFIDENCE
    min_score: float = MIN_SCORE

    def __post_init__(self):
        if not 0 < self.band_low < self.match_iou <= 1:
            raise InvalidChoice(
                f"need 0 < band_low ({self.band_low}) < match_iou ({self.match_iou}) <= 1"
            )
        for name in ("min_confidence", "min_score"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidChoice(f"{name} must lie in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Suspect:
    image_id: int
    kind: str
    score: float
    label: str  # the ground-truth label (missing: the predicted one)
    box: tuple[float, float, float, float]
    predicted: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _xyxy(b) -> tuple[float, float, float, float]:
    if isinstance(b, dict):
        return (b["x1"], b["y1"], b["x2"], b["y2"])
    return (b.x1, b.y1, b.x2, b.y2)


def _conf(p: dict) -> float:
    return float(p.get("score") or 0.0)


def _prob(p: dict, label: str) -> float:
    probs = p.get("probs") or {}
    if probs:
        return float(probs.get(label, 0.0))
    return _conf(p) if p.get("label") == label else 0.0


def image_suspects(image_id: int, truth: list, predictions: list[dict], t: Thresholds) -> list:
    """Every scored suspect of one image (unfiltered by ``t.min_score``)."""
    out = []
    gt = [(b.label if not isinstance(b, dict) else b["label"], _xyxy(b)) for b in truth]
    for p in predictions:
        if _conf(p) < t.min_confidence:
            continue
        best = max((iou_xyxy(_xyxy(p), g) for _, g in gt), default=0.0)
        if best < t.band_low:
            out.append(Suspect(image_id, "missing", _conf(p), p["label"], _xyxy(p), p["label"]))
    for label, g in gt:
        ious = [(iou_xyxy(_xyxy(p), g), p) for p in predictions]
        support = max((min(1.0, i / t.band_low) * _conf(p) for i, p in ious), default=0.0)
        if support < 1.0:
            out.append(Suspect(image_id, "extra", 1.0 - support, label, g))
        same = max((i for i, p in ious if p["label"] == label), default=0.0)
        if t.band_low <= same < t.match_iou:
            p = max((p for i, p in ious if p["label"] == label and i == same), key=_conf)
            score = _conf(p) * (t.match_iou - same) / (t.match_iou - t.band_low)
            out.append(Suspect(image_id, "localisation", score, label, g, label))
        if same < t.match_iou:
            other = [(i, p) for i, p in ious if p["label"] != label and i >= t.match_iou]
            if other:
                _, p = max(other, key=lambda ip: ip[0])
                score = max(0.0, _prob(p, p["label"]) - _prob(p, label))
                out.append(Suspect(image_id, "wrong_class", score, label, g, p["label"]))
    return out


@dataclass
class LabelErrorReport:
    model_version: str
    suspects: list[Suspect]  # best first
    image_scores: dict[int, float]  # image id -> noisy-or of its suspects, best first
    images: int
    checked: frozenset[int] = frozenset()  # the images scored (ground truth and predictions)

    def as_dict(self) -> dict:
        return {
            "model_version": self.model_version,
            "images": self.images,
            "suspects": [s.as_dict() for s in self.suspects],
            "image_scores": [{"image_id": i, "score": s} for i, s in self.image_scores.items()],
        }


def label_errors(
    model_version: str,
    truth: dict[int, list],
    predictions: dict[int, list[dict]],
    thresholds: Thresholds | None = None,
    kind: str | None = None,
) -> LabelErrorReport:
    """Suspects scoring >= ``min_score`` over the images in ``truth`` that have predictions."""
    t = thresholds or Thresholds()
    if kind is not None and kind not in KINDS:
        raise InvalidChoice(f"unknown label-error kind {kind!r}; choose one of {', '.join(KINDS)}")
    suspects: list[Suspect] = []
    scores: dict[int, float] = {}
    checked = []
    for image_id, boxes in truth.items():
        if image_id not in predictions:
            continue
        checked.append(image_id)
        found = [
            s
            for s in image_suspects(image_id, boxes, predictions[image_id], t)
            if s.score >= t.min_score and (kind is None or s.kind == kind)
        ]
        suspects += found
        if found:
            scores[image_id] = 1.0 - math.prod(1.0 - s.score for s in found)
    suspects.sort(key=lambda s: (-s.score, s.image_id, s.kind))
    ordered = dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))
    return LabelErrorReport(model_version, suspects, ordered, len(checked), frozenset(checked))


# ---- from the catalog ------------------------------------------------------------------


class NoPromotedModel(WorkbenchError):
    """No detector to take predictions from."""


class NoGroundTruth(WorkbenchError):
    """No annotated image to check."""


class NoPredictions(WorkbenchError):
    """The model has no stored predictions on the annotated images."""


def model_for_errors(catalog, version: str | None):
    """The detector whose predictions the labels are checked against: ``version``, or
    the promoted detector."""
    if version is None:
        model = catalog.promoted_model()
        if model is None:
            raise NoPromotedModel(
                "no promoted detector yet, so nothing to check the labels against: run "
                "`wb retrain` (it promotes a model that beats the last one), or "
                "`wb models promote VERSION`, or name one with --version"
            )
        return model
    model = catalog.model(version)
    if model is None or model.task != "detect":
        known = ", ".join(m.version for m in catalog.models() if m.task == "detect")
        raise NoPromotedModel(
            f"no detector version '{version}' in the catalog; detectors: "
            f"{known or 'none yet (run `wb retrain`)'}"
        )
    return model


def catalog_label_errors(
    catalog,
    taxonomy,
    version: str | None = None,
    thresholds: Thresholds | None = None,
    kind: str | None = None,
    level: str | None = None,
) -> LabelErrorReport:
    """``label_errors`` of the active annotated images against the stored predictions of
    ``version`` (default: the promoted detector), the ground truth mapped to the level
    the model predicts at (``level`` when the model does not record one)."""
    model = model_for_errors(catalog, version)
    level = model.level or level
    images = catalog.images(status="active", annotated=True)
    if not images:
        raise NoGroundTruth(
            "no annotated images in the catalog, so no labels to check: ingest annotations "
            "(`wb ingest PATH --format coco|voc|yolo|labelstudio`) or pull them (`wb pull`)"
        )
    ids = [im.id for im in images]
    predictions = catalog.predictions(model.version, ids)
    if not predictions:
        raise NoPredictions(
            f"model {model.version} has no stored predictions on the {len(ids)} annotated "
            "images (`wb retrain` predicts only the unannotated ones): run "
            "`wb review --no-launch`, which predicts them, then run this again"
        )
    boxes = catalog.boxes_by_image(ids)

    def mapped(label: str) -> str:
        return taxonomy.to_level(label, level, unknown="keep") if level else label

    truth = {
        i: [
            Box(mapped(b.label), b.x1, b.y1, b.x2, b.y2, b.source, b.annotator)
            for b in boxes.get(i, [])
        ]
        for i in ids
    }
    return label_errors(model.version, truth, predictions, thresholds, kind)


KIND_WORDS = {
    "missing": "a {label} the model sees here has no box",
    "extra": "nothing the model sees supports this {label} box",
    "wrong_class": "this {label} box looks like a {predicted}",
    "localisation": "this {label} box is off the object",
}


def suspect_line(s: Suspect) -> str:
    """What to check about one suspect, with its box in pixels (x1,y1-x2,y2)."""
    what = KIND_WORDS[s.kind].format(label=s.label, predicted=s.predicted)
    x1, y1, x2, y2 = (round(v) for v in s.box)
    return f"{s.kind} {s.score:.2f}: {what} at {x1},{y1}-{x2},{y2}"


def suspect_note(model_version: str, suspects: list[Suspect], most: int = 5) -> str:
    """The line an annotator reads above the image: what to check, best first."""
    parts = [suspect_line(s) for s in suspects[:most]]
    more = f"; +{len(suspects) - most} more" if len(suspects) > most else ""
    return f"Possible label errors (model {model_version}): " + "; ".join(parts) + more
