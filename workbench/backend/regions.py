"""A model's detections -> Label Studio regions, fitted to the project's label config.

``from_name``/``to_name`` and the task data key come from the config Label Studio
sends; a detected class is mapped onto the config's labels through the taxonomy
(a species model serving a category project keeps only what maps); boxes become
percent of the EXIF-corrected image (``labelstudio.tasks.percent_rect``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..active.uncertainty import UncertaintyConfig, score_image
from ..errors import UnknownClassError
from ..labelstudio.config import FROM_NAME, TO_NAME
from ..labelstudio.tasks import percent_rect
from ..taxonomy import BACKGROUND, LEVELS, Taxonomy
from .schemas import RectangleValue, RegionResult


class LabelConfigError(ValueError):
    """The label config cannot hold rectangles."""


@dataclass(frozen=True)
class RectangleTarget:
    from_name: str
    to_name: str
    data_key: str  # the task data field holding the image URL
    labels: tuple[str, ...] | None  # None: any label (no config was sent)


DEFAULT_TARGET = RectangleTarget(FROM_NAME, TO_NAME, "image", None)


def rectangle_target(label_config: str | None) -> RectangleTarget:
    """The RectangleLabels control of a config and the Image it points at."""
    if not label_config or not label_config.strip():
        return DEFAULT_TARGET
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as exc:
        raise LabelConfigError(f"the label config is not valid XML: {exc}") from None
    controls = [c for c in root.iter("RectangleLabels") if c.get("name") and c.get("toName")]
    if not controls:
        raise LabelConfigError(
            "the label config has no RectangleLabels control with a "
            "name and toName: this backend draws rectangles"
        )
    ctrl = next((c for c in controls if c.get("name") == FROM_NAME), controls[0])
    to_name = ctrl.get("toName").split(",")[0]
    image = next((i for i in root.iter("Image") if i.get("name") == to_name), None)
    value = (image.get("value") or "") if image is not None else ""
    if not value.startswith("$") or len(value) < 2:
        raise LabelConfigError(
            f'the label config has no <Image name="{to_name}" value="$field"> for the rectangles'
        )
    labels = tuple(lab.get("value") for lab in ctrl.iter("Label") if lab.get("value"))
    return RectangleTarget(ctrl.get("name"), to_name, value[1:], labels)


class LabelMapper:
    """Model class -> a label of the config (or None: not shown)."""

    def __init__(self, taxonomy: Taxonomy | None):
        self.taxonomy = taxonomy

    def __call__(self, label: str, target: RectangleTarget) -> str | None:
        if target.labels is None or label in target.labels:
            return label
        if self.taxonomy is None:
            return None
        for level in LEVELS:
            mapped = self.taxonomy.to_level(label, level, unknown="none")
            if mapped is None:
                return None
            if mapped in target.labels:
                return mapped
        return None


def regions(
    detections: list[dict],
    width: int,
    height: int,
    target: RectangleTarget,
    mapper: LabelMapper,
    min_score: float = 0.0,
    prefix: str = "wb",
) -> list[RegionResult]:
    out = []
    for i, det in enumerate(detections):
        if float(det["score"]) < min_score:
            continue
        label = mapper(det["label"], target)
        if label is None:
            continue
        rect = percent_rect(det, width, height)
        if rect["width"] <= 0 or rect["height"] <= 0:
            continue
        out.append(
            RegionResult(
                id=f"{prefix}{i}",
                from_name=target.from_name,
                to_name=target.to_name,
                original_width=width,
                original_height=height,
                value=RectangleValue(**rect, rectanglelabels=[label]),
                score=float(det["score"]),
            )
        )
    return out


def image_uncertainty(
    detections: list[dict],
    image_label: str | None,
    classes: list[str],
    taxonomy: Taxonomy | None,
    config: UncertaintyConfig,
) -> float:
    """The image's uncertainty from the model's boxes (``active.uncertainty``), with the
    image-level label mapped to the model's level when the taxonomy knows it."""
    label = None
    products: list[str] = list(classes)
    if taxonomy is not None:
        lookalike = set(taxonomy.lookalike_species())
        products = [c for c in classes if _species(taxonomy, c) not in lookalike]
        if image_label and image_label != BACKGROUND:
            for level in LEVELS:
                mapped = taxonomy.to_level(image_label, level, unknown="none")
                if mapped is None:
                    break
                if mapped in classes:
                    label = mapped
                    break
    elif image_label in classes:
        label = image_label
    return score_image(detections, config, label, classes, products).uncertainty


def _species(taxonomy: Taxonomy, label: str) -> str | None:
    try:
        return taxonomy.species_of(label)
    except UnknownClassError:
        return None
