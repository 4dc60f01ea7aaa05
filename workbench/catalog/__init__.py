"""The SQLite catalog: the workspace's state. Only this package speaks SQL.

``Catalog`` is composed of one mixin per area (images, dedup, Label Studio,
models, active learning, backend events), each in its own module.
"""
from __future__ import annotations

from .core import CatalogCore, now_iso
from .dedup import DedupMixin
from .events import EventsMixin
from .images import ImagesMixin
from .labelstudio import LabelStudioMixin
from .models import ModelsMixin
from .priorities import PrioritiesMixin
from .review import ReviewMixin
from .records import SPLITS, STATUSES, Box, ImageRecord, ImportedImage


class Catalog(ImagesMixin, DedupMixin, LabelStudioMixin, ModelsMixin, PrioritiesMixin,
              EventsMixin, ReviewMixin, CatalogCore):
    """The workspace catalog. Open with ``Catalog.open(path)``."""


__all__ = ["Catalog", "Box", "ImageRecord", "ImportedImage", "STATUSES", "SPLITS", "now_iso"]
