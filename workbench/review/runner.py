"""The ``wb`` side: run the FiftyOne worker process and talk to it.

``build_review`` builds/updates the dataset and returns the summary;
``ReviewApp`` builds, launches the App and keeps it up until ``stop()``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Self

from ..errors import ServiceError, WorkbenchError
from ..services import spawn
from .environment import DEFAULT_APP_PORT, fiftyone_env, review_paths

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
StageFn = Callable[[str, dict], None]  # a build step starts: its name and counts
STOP_TIMEOUT = 60.0  # seconds for the App and the database to close before SIGKILL


class WorkerProcess:
    """One ``python -m workbench.review.worker`` run; its events come as dicts."""

    def __init__(
        self,
        ws,
        command: str,
        model: str | None = None,
        port: int = DEFAULT_APP_PORT,
        verbose: int = 0,
        args: Sequence[str] = (),
    ):
        self.ws = ws
        self.paths = review_paths(ws).ensure()
        self.log_path: Path = self.paths.log_dir / "worker.log"
        argv = [
            sys.executable,
            "-m",
            "workbench.review.worker",
            command,
            "--workspace",
            str(ws.root),
            "--port",
            str(port),
        ]
        if model is not None:
            argv += ["--model", model]
        argv += ["-v"] * verbose
        argv += list(args)  # the command's own options (e.g. select's --view/--tag)
        env = {**os.environ, **fiftyone_env(self.paths, port)}
        # own session: a Ctrl-C in the terminal reaches only `wb`, which then stops
        # the worker in order (App, then database); and the worker dies with `wb`.
        # Stopping signals the worker alone, so that it can keep that order.
        self.service = spawn(
            "the FiftyOne worker",
            argv,
            self.log_path,
            env=env,
            stdout_pipe=True,
            die_with_parent=True,
            stop_timeout=STOP_TIMEOUT,
            signal_group=False,
        )
        self.process = self.service.process

    @property
    def pid(self) -> int:
        return self.process.pid

    def until(
        self, event: str, on_progress: ProgressFn | None = None, on_stage: StageFn | None = None
    ) -> dict:
        """Read events up to ``event`` and return it; an ``error`` event, or the
        worker ending first, raises with the worker's message."""
        for line in self.process.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                log.debug("worker: %s", line.rstrip())
                continue
            kind = msg.pop("event", None)
            if kind == event:
                return msg
            if kind == "progress" and on_progress:
                on_progress(msg["done"], msg["total"])
            elif kind == "stage" and on_stage:
                on_stage(msg["stage"], msg.get("info") or {})
            elif kind == "error":
                self.wait()
                raise WorkbenchError(msg["message"])
        code = self.wait()
        raise ServiceError(
            f"the FiftyOne worker ended (exit code {code}) before '{event}'; see {self.log_path}"
        )

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._close()
        return code

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (the worker closes the App, then its database), then SIGKILL."""
        self.service.stop(timeout)
        self._close()
        return self.process.returncode

    def _close(self) -> None:
        if self.process.stdout and not self.process.stdout.closed:
            self.process.stdout.close()


def run_worker(
    ws,
    command: str,
    event: str,
    on_progress: ProgressFn | None = None,
    on_stage: StageFn | None = None,
    **options,
) -> dict:
    """Run one worker command to its end and return its ``event``; the worker is
    stopped whatever happens (``options``: ``WorkerProcess``'s)."""
    worker = WorkerProcess(ws, command, **options)
    try:
        result = worker.until(event, on_progress, on_stage)
        worker.wait()
        return result
    finally:
        worker.stop()


def build_review(
    ws,
    model: str | None = None,
    on_progress: ProgressFn | None = None,
    verbose: int = 0,
    on_stage: StageFn | None = None,
    thresholds=None,
) -> dict:
    """Build or update the review dataset, its evaluations and saved views
    (``thresholds``: the label-error ones of likely-label-errors, default its defaults).

    Returns ``{"dataset", "samples", "views", "evaluations", ...}`` (see
    ``build.build_review_dataset``)."""
    args = _threshold_args(thresholds)
    return run_worker(
        ws, "build", "built", on_progress, on_stage, model=model, verbose=verbose, args=args
    )["summary"]


def _threshold_args(thresholds) -> list[str]:
    return ["--thresholds", json.dumps(asdict(thresholds))] if thresholds is not None else []


def describe_review(ws) -> dict:
    """What the review dataset holds, per sample and per saved view."""
    return run_worker(ws, "describe", "described")


class ReviewApp:
    """Build, then serve the FiftyOne App on 127.0.0.1 until ``stop()``.

    ``with ReviewApp(ws) as app: app.start(); print(app.url); app.wait()``
    """

    def __init__(
        self,
        ws,
        model: str | None = None,
        port: int = DEFAULT_APP_PORT,
        verbose: int = 0,
        thresholds=None,
    ):
        self.ws, self.model, self.port, self.verbose = ws, model, port, verbose
        self.thresholds = thresholds
        self.worker: WorkerProcess | None = None
        self.summary: dict | None = None
        self.url: str | None = None
        self.view_urls: dict[str, str] = {}

    def start(
        self,
        on_progress: ProgressFn | None = None,
        on_built: Callable[[dict], None] | None = None,
        on_stage: StageFn | None = None,
    ) -> dict:
        """Blocks until the App answers; returns the build summary."""
        self.worker = WorkerProcess(
            self.ws,
            "serve",
            model=self.model,
            port=self.port,
            verbose=self.verbose,
            args=_threshold_args(self.thresholds),
        )
        try:
            self.summary = self.worker.until("built", on_progress, on_stage)["summary"]
            if on_built:
                on_built(self.summary)
            ready = self.worker.until("ready")
        except BaseException:
            self.stop()
            raise
        self.url, self.view_urls = ready["url"], ready["views"]
        return self.summary

    @property
    def pid(self) -> int | None:
        return self.worker.pid if self.worker else None

    def wait(self) -> int:
        """Block until the App process ends (Ctrl-C raises KeyboardInterrupt here)."""
        return self.worker.wait() if self.worker else 0

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
