"""Catalog tables for this area (see schema.py). Owned by the labelstudio feature."""
from __future__ import annotations


class LabelStudioMixin:
    pass
