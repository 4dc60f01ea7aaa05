"""How many ``/predict`` requests run at once, and how many may wait.

A request in progress holds its task images decoded in memory (up to ``MAX_TASKS`` of
them) while it waits for the one forward pass that runs at a time, so the number in
progress is bounded: ``slots`` run (one decodes images while another infers), up to
``queue`` more wait their turn, and any beyond that, or one that waited ``wait_s``
seconds, gets 503 at once with a message saying so. Label Studio waits 100 s for an
answer, so a queued request is answered (or refused) before it gives up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import WorkbenchError

DEFAULT_SLOTS = 2
DEFAULT_QUEUE = 32
DEFAULT_WAIT_S = 90.0  # under Label Studio's 100 s /predict timeout


class Busy(WorkbenchError):
    """Too many predict requests at once; the client should retry later."""


class PredictGate:
    def __init__(
        self, slots: int = DEFAULT_SLOTS, queue: int = DEFAULT_QUEUE, wait_s: float = DEFAULT_WAIT_S
    ):
        if slots < 1 or queue < 0 or wait_s <= 0:
            raise ValueError("a predict gate needs slots >= 1, queue >= 0 and wait_s > 0")
        self.slots = slots
        self.queue = queue
        self.wait_s = wait_s
        self._free = threading.Semaphore(slots)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.peak_waiting = 0
        self.refused = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one slot for the duration of a request; raise ``Busy`` when the queue is
        full or the wait is over."""
        if not self._free.acquire(blocking=False):
            with self._lock:
                if self.waiting >= self.queue:
                    self.refused += 1
                    raise Busy(
                        f"busy: {self.slots} predict requests running and {self.waiting} "
                        "waiting; retry later"
                    )
                self.waiting += 1
                self.peak_waiting = max(self.peak_waiting, self.waiting)
            try:
                got = self._free.acquire(timeout=self.wait_s)
            finally:
                with self._lock:
                    self.waiting -= 1
            if not got:
                with self._lock:
                    self.refused += 1
                raise Busy(
                    f"busy: waited {self.wait_s:g} s for one of {self.slots} predict slots; "
                    "retry later"
                )
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._free.release()
