"""Catalog tables for this area (see schema.py). Owned by the events feature."""
from __future__ import annotations


class EventsMixin:
    pass
