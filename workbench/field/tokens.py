"""Device tokens for the field app: made once, shown once, kept only as a hash.

A token is ``secrets.token_urlsafe(32)`` (256 random bits); the catalog keeps its
sha256, so a copy of the catalog lets nobody in. A revoked token is refused at once
(every request looks its hash up).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ..catalog.records import FieldDevice
from ..errors import WorkbenchError

DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_device_name(name: str) -> str:
    if not DEVICE_NAME.match(name or ""):
        raise WorkbenchError(
            f"device name {name!r} is not usable: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. officer-7)"
        )
    return name


def add_device(catalog, name: str) -> str:
    """Make a token for a new device (or a revoked one); returns the token, which is
    not stored and cannot be shown again."""
    check_device_name(name)
    token = secrets.token_urlsafe(32)
    if not catalog.add_field_device(name, token_hash(token)):
        raise WorkbenchError(
            f"device {name!r} already has a token; revoke it first "
            f"(`wb field token revoke {name}`) or choose another name"
        )
    return token


def revoke_device(catalog, name: str) -> None:
    if not catalog.revoke_field_device(name):
        known = ", ".join(d.name for d in catalog.field_devices() if d.active) or "none"
        raise WorkbenchError(
            f"no device {name!r} with a token in use (devices with tokens: {known}; "
            "`wb field token list`)"
        )


def device_for_token(catalog, token: str) -> FieldDevice | None:
    """The device a bearer token belongs to, or None (unknown or revoked)."""
    if not token:
        return None
    return catalog.field_device_for_token(token_hash(token))
