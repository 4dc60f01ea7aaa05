"""Named fault points for the fault tests (tests/fault/): ``WB_FAULT_AT=name:N`` makes
the process kill itself with SIGKILL the N-th time it passes ``fault_point(name)``, as
`kill -9` would at that moment. Unset, a point costs one comparison.

The points sit at commit and batch boundaries, where a real kill does the most harm:
see docs/operations.md ("Faults") for the list.
"""

from __future__ import annotations

import os
import signal

ENV = "WB_FAULT_AT"


def parse(spec: str | None) -> tuple[str, int] | None:
    """``"push.imported:2"`` -> ``("push.imported", 2)``; unset or empty -> None."""
    if not spec:
        return None
    name, sep, count = spec.rpartition(":")
    if not sep or not name or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV}={spec!r}: expected NAME:N with N >= 1, e.g. ingest.stored:3")
    return name, int(count)


_target = parse(os.environ.get(ENV))
_passes = 0


def fault_point(name: str) -> None:
    """Kill this process here when ``WB_FAULT_AT`` names this point and pass."""
    global _passes
    if _target is None or _target[0] != name:
        return
    _passes += 1
    if _passes == _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
