"""`wb` commands for this area (not built yet)."""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
