"""The serving model: loaded once, swapped when the promoted version changes.

``ModelHolder.current()`` looks at the catalog's promoted version at most every
``poll_seconds`` (one indexed SELECT). When it changed, the request that noticed
loads the new version while every other request keeps using the old one; then the
reference is swapped under a lock. A request in flight holds its own reference, so
a swap never fails it: it finishes on the version it started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..errors import WorkbenchError

logger = logging.getLogger(__name__)


class NoModel(WorkbenchError):
    """No model version is promoted (or none could be loaded)."""


class ModelHolder:
    def __init__(
        self,
        load: Callable[[str], object],
        promoted_version: Callable[[], str | None],
        poll_seconds: float = 2.0,
        on_swap: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load = load
        self._promoted_version = promoted_version
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap
        self._clock = clock
        self._predictor = None
        self._checked_at: float | None = None
        self._swap_lock = threading.Lock()  # guards the reference
        self._load_lock = threading.Lock()  # one load at a time
        # one forward pass at a time, always on the same thread: concurrent passes only
        # fight over the same cores, and passes run by many request threads would each
        # grow their own malloc arena (measured: +50 % peak RSS under 8 clients)
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wb-infer")
        self.last_error: str | None = None

    @classmethod
    def for_workspace(
        cls,
        ws,
        catalog_factory,
        poll_seconds: float = 2.0,
        on_swap: Callable[[str], None] | None = None,
        runtime: str = "torch",
        version: str | None = None,
        **predictor_kw,
    ) -> ModelHolder:
        """Serve the workspace's promoted model on ``runtime`` (``predict.RUNTIMES``; the
        predictor's keyword arguments pass on). With ``onnx``, a promoted version that has
        no verified ``model.onnx`` is not loaded: the old one keeps serving, the error
        (run `wb models export VERSION`) is logged once, and it is picked up at the next
        poll after the export. ``version`` pins one detector version instead of following
        the promoted one; a version that is not a detector (a classifier) is refused here,
        before anything is served."""
        from ..detection.predict import load_predictor
        from ..detection.registry import Registry

        if version is not None:
            with catalog_factory() as catalog:
                Registry.of(ws, catalog).resolve(version, task="detect")

        def load(wanted: str):
            with catalog_factory() as catalog:
                path = Registry.of(ws, catalog).resolve(wanted, task="detect").path
            return load_predictor(path, runtime, **predictor_kw)

        def promoted_version() -> str | None:
            if version is not None:
                return version
            with catalog_factory() as catalog:
                row = catalog.promoted_model()
            return row.version if row else None

        return cls(load, promoted_version, poll_seconds, on_swap)

    def infer(self, predictor, images: list) -> list:
        """``predictor.predict(images)`` on the one inference thread (callers queue)."""
        return self._inference.submit(predictor.predict, images).result()

    @property
    def version(self) -> str | None:
        p = self._predictor
        return p.version if p is not None else None

    def current(self):
        """The predictor to use for one request (None when no model is promoted)."""
        if self._predictor is None:
            self.refresh(block=True)  # nothing to serve yet: wait for a load in progress
        elif self._clock() - (self._checked_at or 0.0) >= self.poll_seconds:
            self.refresh(block=False)
        return self._predictor

    def require(self):
        predictor = self.current()
        if predictor is None:
            raise NoModel(
                self.last_error
                or "no promoted model yet: run `wb retrain`, or `wb models promote VERSION`"
            )
        return predictor

    def refresh(self, block: bool = True) -> bool:
        """Load the promoted version if it is not the one served; True when swapped.
        With ``block=False`` a request returns at once when another is loading."""
        if not self._load_lock.acquire(blocking=block):
            return False
        try:
            self._checked_at = self._clock()
            try:
                wanted = self._promoted_version()
            except Exception as exc:  # a locked or missing catalog must not stop serving
                logger.warning("could not read the promoted model version: %s", exc)
                return False
            if wanted is None or wanted == self.version:
                if wanted is None and self._predictor is None:
                    self.last_error = None
                return False
            try:
                fresh = self._load(wanted)
            except Exception as exc:
                error = (
                    f"model {wanted} is promoted but could not be loaded "
                    f"({type(exc).__name__}: {exc})"
                )
                # said once per cause, not at every poll, until it changes or loads
                log = logger.debug if error == self.last_error else logger.error
                self.last_error = error
                log("%s; still serving %s", error, self.version or "nothing")
                return False
            old = self.version
            with self._swap_lock:
                self._predictor = fresh
            self.last_error = None
            logger.info("serving model %s (was %s)", wanted, old or "none")
            if self.on_swap is not None and old is not None:
                try:
                    self.on_swap(wanted)
                except Exception as exc:
                    logger.warning("after switching to %s: %s", wanted, exc)
            return True
        finally:
            self._load_lock.release()
