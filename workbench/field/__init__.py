"""The field app: identify a product from a phone, collect the officer's verdict, and
feed it to the loop.

``field_router`` (api.py) adds ``/app``, ``/v1/detect``, ``/v1/feedback`` and
``/v1/classes`` to `wb serve --field`, sharing its model and catalog; ``store.py``
checks an upload and stores it upright without its location; ``tokens.py`` makes and
checks device tokens (hashes only); ``report.py`` is `wb field report`.
"""

from __future__ import annotations

from .api import UNCERTAIN_AT, FieldSettings, field_router

__all__ = ["UNCERTAIN_AT", "FieldSettings", "field_router"]
