"""``--retrain-after N``: N new annotations start a retrain in a background thread.

One retrain at a time. The annotation events a run counts are marked consumed when it
starts, so annotations that arrive during a run count towards the next one. The run
itself is ``workbench.detection.retrain.retrain`` with promotion ``if_better``: the
new version serves (the ``ModelHolder`` notices the promotion) only when it beats the
current one on the same test split.

A retrain changes the workspace, so it holds the workspace lock (``workspace_lock``)
for its run. When another writer holds it (a `wb push` in a terminal), the retrain
does not wait: the webhook answers at once as always, the annotations stay counted,
and the next annotation event tries again (logged as "postponed").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..catalog.core import now_iso
from ..lock import WorkspaceBusy, WorkspaceLock

logger = logging.getLogger(__name__)

LAST_RETRAIN_KEY = "backend.last_retrain"


class RetrainWorker:
    def __init__(
        self,
        run: Callable[[], dict[str, Any]],
        catalog_factory,
        threshold: int,
        workspace_lock: Callable[[], WorkspaceLock] | None = None,
    ):
        if threshold < 1:
            raise ValueError("--retrain-after must be at least 1")
        self._run = run
        self._workspace_lock = workspace_lock
        self._catalog_factory = catalog_factory
        self.threshold = threshold
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def maybe_start(self) -> bool:
        """Start a retrain when enough new annotations arrived and none runs; True if started."""
        with self._lock:
            if self.running:
                return False
            with self._catalog_factory() as catalog:
                pending = catalog.pending_annotation_events()
            if len(pending) < self.threshold:
                return False
            held = self._take_workspace(len(pending))
            if held is False:
                return False
            try:
                with self._catalog_factory() as catalog:
                    catalog.consume_webhook_events(pending)
                self._thread = threading.Thread(
                    target=self._work, args=(len(pending), held), name="wb-retrain", daemon=True
                )
                self._thread.start()
            except BaseException:
                if held is not None:
                    held.release()
                raise
            return True

    def join(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def _take_workspace(self, annotations: int) -> WorkspaceLock | None | bool:
        """The workspace lock, held; None without one; False when another writer has it."""
        if self._workspace_lock is None:
            return None
        lock = self._workspace_lock()
        try:
            lock.acquire(wait=0)
        except WorkspaceBusy as exc:
            who = exc.holder.describe() if exc.holder else "another wb process"
            logger.warning(
                "retrain after %d new annotations postponed: %s is changing the workspace; "
                "the next annotation event tries again",
                annotations,
                who,
            )
            return False
        return lock

    def _work(self, annotations: int, held: WorkspaceLock | None = None) -> None:
        started = now_iso()
        logger.info("retraining after %d new annotations", annotations)
        try:
            report = self._run()
            outcome = {"status": "done", "report": report}
        except Exception as exc:  # the service keeps serving the model it has
            logger.exception("background retrain failed")
            outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            if held is not None:
                held.release()
        self.runs += 1
        self.last = {
            "started_at": started,
            "finished_at": now_iso(),
            "annotations": annotations,
            **outcome,
        }
        try:
            import json

            with self._catalog_factory() as catalog:
                catalog.set_meta(LAST_RETRAIN_KEY, json.dumps(self.last, default=str))
        except Exception as exc:
            logger.warning("could not record the retrain outcome: %s", exc)
