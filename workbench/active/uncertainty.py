"""Per-image uncertainty from a detector's boxes, FiftyOne style: config -> method -> results.

A box carries its full class probability vector (``probs``: class -> p, including
``background`` when the model reports it). Per box:

- ``least_confidence``: 1 - max p
- ``margin``: 1 - (p1 - p2), top-1 minus top-2
- ``entropy``: -sum p log p / log K (normalised to [0, 1])

Per image, box scores are aggregated by ``max``, ``mean`` or ``sum``; ``sum`` is the
probabilistic OR 1 - prod(1 - u_i), which grows with the number of unsure boxes and
stays in [0, 1]. Boxes below ``min_score`` are ignored (they are not shown to anyone).

Signals that matter for marketplace photos are combined on top, each in [0, 1]:

- ``label_disagreement``: the image's own label (at the model's level) is a detection
  class, and the most confident box says another class;
- ``missed_product``: the image is labelled as a product (not a look-alike, not
  background) but no box reaches ``confident``;
- ``class_instability``: share of overlapping box pairs (IoU > ``overlap_iou``) that
  disagree on the class.

uncertainty = 1 - (1 - base) * prod(1 - w_s * signal_s): any strong signal lifts an
image, and the components are kept so a person can see why it was picked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ..errors import check_choice
from ..geometry import iou_xyxy

SCORES = ("least_confidence", "margin", "entropy")
AGGREGATES = ("max", "mean", "sum")
BACKGROUND_KEYS = ("background", "__background__")


@dataclass
class UncertaintyConfig:
    score: str = "least_confidence"
    aggregate: str = "max"
    min_score: float = 0.05  # boxes below this are ignored
    confident: float = 0.5  # a "confident detection" for missed_product
    overlap_iou: float = 0.5
    weight_label_disagreement: float = 0.6
    weight_missed_product: float = 0.5
    weight_class_instability: float = 0.5
    empty_uncertainty: float = 0.0  # base uncertainty of an image with no boxes

    def __post_init__(self) -> None:
        check_choice("uncertainty score", self.score, SCORES)
        check_choice("aggregate", self.aggregate, AGGREGATES)


@dataclass
class ImageUncertainty:
    image_id: int | None
    uncertainty: float
    components: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def box_uncertainty(probs: dict[str, float] | Iterable[float], score: str) -> float:
    p = sorted(
        (float(v) for v in (probs.values() if isinstance(probs, dict) else probs)), reverse=True
    )
    if not p:
        return 0.0
    check_choice("uncertainty score", score, SCORES)
    total = sum(p)
    if total > 0:
        p = [v / total for v in p]
    if score == "least_confidence":
        return 1.0 - p[0]
    if score == "margin":
        return 1.0 - (p[0] - (p[1] if len(p) > 1 else 0.0))
    # entropy
    if len(p) < 2:
        return 0.0
    h = -sum(v * math.log(v) for v in p if v > 0)
    return h / math.log(len(p))


def aggregate(values: list[float], how: str) -> float:
    if not values:
        return 0.0
    check_choice("aggregate", how, AGGREGATES)
    if how == "max":
        return max(values)
    if how == "mean":
        return sum(values) / len(values)
    # sum: the chance that at least one box is wrong, boxes taken as independent
    prod = 1.0
    for v in values:
        prod *= 1.0 - min(max(v, 0.0), 1.0)
    return 1.0 - prod


def _iou(a: dict, b: dict) -> float:
    return iou_xyxy((a["x1"], a["y1"], a["x2"], a["y2"]), (b["x1"], b["y1"], b["x2"], b["y2"]))


def _probs_of(box: dict) -> dict[str, float]:
    probs = box.get("probs")
    if probs:
        return probs
    s = float(box.get("score", 0.0))
    return {box["label"]: s, "background": 1.0 - s}


def score_image(
    boxes: list[dict],
    config: UncertaintyConfig,
    image_label: str | None = None,
    classes: Iterable[str] = (),
    product_classes: Iterable[str] = (),
    image_id: int | None = None,
) -> ImageUncertainty:
    """Uncertainty of one image from its predicted boxes (dicts: label, x1..y2, score, probs).

    ``image_label`` is the image-level label already mapped to the model's level;
    ``classes`` the model's classes; ``product_classes`` those that are products
    (not look-alikes): an image labelled with one of them should show a confident box.
    """
    kept = [b for b in boxes if float(b.get("score", 0.0)) >= config.min_score]
    per_box = [box_uncertainty(_probs_of(b), config.score) for b in kept]
    base = aggregate(per_box, config.aggregate) if kept else config.empty_uncertainty
    classes = set(classes)
    products = set(product_classes)

    disagreement = 0.0
    if image_label in classes and kept:
        top = max(kept, key=lambda b: float(b.get("score", 0.0)))
        disagreement = float(top["label"] != image_label)
    missed = 0.0
    if image_label in products:
        confident = [b for b in kept if float(b.get("score", 0.0)) >= config.confident]
        missed = float(not confident)
    pairs = unstable = 0
    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            if _iou(kept[i], kept[j]) > config.overlap_iou:
                pairs += 1
                unstable += kept[i]["label"] != kept[j]["label"]
    instability = unstable / pairs if pairs else 0.0

    rest = (
        (1 - base)
        * (1 - config.weight_label_disagreement * disagreement)
        * (1 - config.weight_missed_product * missed)
        * (1 - config.weight_class_instability * instability)
    )
    components = {
        "base": round(base, 6),
        "score": config.score,
        "aggregate": config.aggregate,
        "boxes": len(kept),
        "label_disagreement": disagreement,
        "missed_product": missed,
        "class_instability": round(instability, 6),
        "box_uncertainties": [round(u, 6) for u in per_box],
    }
    return ImageUncertainty(image_id, round(1 - rest, 6), components)
