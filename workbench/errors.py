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


class DiskFull(WorkbenchError, OSError):
    """Not enough free space for a write (checked before it, or ENOSPC during it).

    Also an ``OSError`` (errno ENOSPC), so code that handles failed writes handles it."""

    def __init__(
        self, folder, free: int | None, needed: int | None = None, what: str | None = None
    ):
        import errno

        super().__init__(errno.ENOSPC, "No space left on device")
        self.folder, self.free, self.needed, self.what = str(folder), free, needed, what

    def __str__(self) -> str:
        free = "unknown" if self.free is None else human_bytes(self.free)
        if self.needed is not None:
            head = (
                f"not enough space in {self.folder}: {self.what or 'this'} needs about "
                f"{human_bytes(self.needed)}, {free} free"
            )
        else:
            head = f"the disk holding {self.folder} is full ({free} free)"
        return (
            f"{head}. Free space on that disk (or use a workspace on a larger one with -w), "
            "then run the same command again; what was saved before is intact."
        )


def human_bytes(n: int | float) -> str:
    """1536 -> '1.5 KB' (powers of 1024, one decimal below 10)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f} {unit}" if abs(value) < 10 else f"{value:.0f} {unit}"
