"""The SQLite catalog: the workspace's state. Only this package speaks SQL.

``Catalog`` is composed of one module per table group: images, boxes and hashes
(images.py), models and predictions (models.py), priorities (priorities.py), Label
Studio tasks and annotations (labelstudio.py), duplicate groups (dedup.py), events
(events.py) and the field app's devices, photos and verdicts (field.py). Each question
has one read; every row type is in records.py.
"""

from __future__ import annotations

from .core import CatalogCore, now_iso
from .dedup import DedupMixin
from .events import EventsMixin
from .field import FieldMixin
from .images import ImagesMixin
from .labelstudio import LabelStudioMixin
from .models import ModelsMixin
from .priorities import PrioritiesMixin
from .records import (
    SPLITS,
    STATUSES,
    AdjudicationTask,
    AnnotationEconomics,
    Box,
    Classification,
    DupGroup,
    DupMember,
    EventRecord,
    FieldDevice,
    FieldFeedback,
    FieldPhoto,
    ImageRecord,
    ImportedImage,
    LsAnnotation,
    ModelRecord,
    PriorityRecord,
)


class Catalog(
    ImagesMixin,
    DedupMixin,
    LabelStudioMixin,
    ModelsMixin,
    PrioritiesMixin,
    EventsMixin,
    FieldMixin,
    CatalogCore,
):
    """The workspace catalog. Open with ``Catalog.open(path)``."""


__all__ = [
    "SPLITS",
    "STATUSES",
    "AdjudicationTask",
    "AnnotationEconomics",
    "Box",
    "Catalog",
    "Classification",
    "DupGroup",
    "DupMember",
    "EventRecord",
    "FieldDevice",
    "FieldFeedback",
    "FieldPhoto",
    "ImageRecord",
    "ImportedImage",
    "LsAnnotation",
    "ModelRecord",
    "PriorityRecord",
    "now_iso",
]
