"""Catalog tables for this area (see schema.py). Owned by the priorities feature."""
from __future__ import annotations


class PrioritiesMixin:
    pass
