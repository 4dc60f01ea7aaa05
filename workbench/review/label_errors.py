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

from ..errors import InvalidChoice
from ..geometry import iou_xyxy

KINDS = ("missing", "extra", "wrong_class", "localisation")
MATCH_IOU = 0.5
BAND_LOW = 0.1
MIN_CONFIDENCE = 0.5
MIN_SCORE = 0.3


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
    images = 0
    for image_id, boxes in truth.items():
        if image_id not in predictions:
            continue
        images += 1
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
    return LabelErrorReport(model_version, suspects, ordered, images)
