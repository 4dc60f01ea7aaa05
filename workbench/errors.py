"""Domain errors. The CLI turns these into click exceptions at the edge."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


class WorkbenchError(Exception):
    """A failure the user can act on; the message says what to do."""


class WorkspaceError(WorkbenchError):
    """The workspace is missing, unreadable or inconsistent."""


class UnknownClassError(WorkbenchError):
    """A label is not in the workspace taxonomy."""


class ServiceError(WorkbenchError):
    """An outside service (Label Studio, FiftyOne, the ML backend) failed or is unreachable."""


class InvalidChoice(WorkbenchError, ValueError):
    """A setting or option value is not one of the allowed ones.

    Also a ``ValueError``: it is a bad value, whoever catches it."""


def check_choice(
    what: str, value: T, choices: Iterable[T], *, error: type[WorkbenchError] = InvalidChoice
) -> T:
    """Return ``value`` if it is one of ``choices``; otherwise raise ``error`` (a
    ``WorkbenchError``) with the one message every "unknown X" check shares:
    ``unknown <what> '<value>'; choose one of: a, b, c``."""
    options = list(choices)
    if value in options:
        return value
    raise error(f"unknown {what} '{value}'; choose one of: {', '.join(map(str, options))}")
