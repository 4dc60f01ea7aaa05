"""Catalog tables for this area (see schema.py). Owned by the models feature."""
from __future__ import annotations


class ModelsMixin:
    pass
