"""Catalog tables for this area (see schema.py). Owned by the dedup feature."""
from __future__ import annotations


class DedupMixin:
    pass
