"""A model's detections -> Label Studio regions, fitted to the project's label config.

Each RectangleLabels control of the config Label Studio sends (``labelstudio.config``)
gets the boxes of its own image, under its ``from_name``/``to_name``, with each detected
class mapped onto its labels by the one mapping push and pull use
(``ControlMapping``: predicted_values, the workspace's label map, else the class's own
name through the taxonomy); boxes become percent of the EXIF-corrected image
(``labelstudio.tasks.percent_rect``).
"""

from __future__ import annotations

from ..active.uncertainty import UncertaintyConfig, score_image
from ..errors import UnknownClassError
from ..labelstudio.config import ControlMapping
from ..labelstudio.tasks import percent_rect
from ..taxonomy import BACKGROUND, LEVELS, Taxonomy
from .schemas import RectangleValue, RegionResult


def regions(
    detections: list[dict],
    width: int,
    height: int,
    mapping: ControlMapping,
    min_score: float = 0.0,
    prefix: str = "wb",
) -> list[RegionResult]:
    """The boxes of one image for one control: those scored at least ``min_score``
    whose class has a label there (``mapping``), in percent of the image."""
    out = []
    control = mapping.control
    for i, det in enumerate(detections):
        if float(det["score"]) < min_score:
            continue
        label = mapping.label_for(det["label"])
        if label is None:
            continue
        rect = percent_rect(det, width, height)
        if rect["width"] <= 0 or rect["height"] <= 0:
            continue
        out.append(
            RegionResult(
                id=f"{prefix}{i}",
                from_name=control.name,
                to_name=control.to_name,
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
