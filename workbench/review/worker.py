"""The process that does all FiftyOne work for one workspace.

``python -m workbench.review.worker {build,serve,describe,select} --workspace W ...``

Why a separate process: FiftyOne reads its configuration at import and writes
``~/.fiftyone``, so the environment (``HOME`` included) must be set before
``import fiftyone`` and must differ per workspace. A fresh process per run gets
exactly that, keeps ``wb`` (and the test process) free of FiftyOne's global
state, and ties the database and App lifetimes to one process: when it exits,
its MongoDB and App server stop with it.

Protocol: one JSON object per line on stdout (``progress``, ``built``, ``ready``,
``described``, ``selected``, ``error``); logs and FiftyOne's own output go to stderr.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import signal
import sys
import threading
from typing import TextIO

from ..errors import ServiceError, WorkbenchError
from ..services import port_open
from ..workspace import Workspace
from .database import ReviewDatabase, database_where
from .environment import APP_ADDRESS, DEFAULT_APP_PORT, fiftyone_env, review_paths

log = logging.getLogger("workbench.review.worker")


class Protocol:
    """JSON lines to the parent, on a private copy of the original stdout."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, event: str, **data) -> None:
        with self.lock:
            self.stream.write(json.dumps({"event": event, **data}, default=str) + "\n")
            self.stream.flush()


def _private_stdout() -> Protocol:
    fd = os.dup(1)
    os.dup2(2, 1)  # anything else printed (FiftyOne, mongod tools) goes to stderr
    sys.stdout = sys.stderr
    return Protocol(os.fdopen(fd, "w", buffering=1))


def _database_error(exc: BaseException, paths, db: ReviewDatabase) -> ServiceError:
    if db.shared_uri:
        return ServiceError(
            f"the shared review database at {database_where(db.shared_uri)} is not usable: "
            f"{type(exc).__name__}: {exc}. Check [review] database_uri in workbench.toml "
            "(remove it to let wb run its own database)"
        )
    return ServiceError(
        f"the review database at {paths.database_dir} is not usable: "
        f"{type(exc).__name__}: {exc}. The review dataset is rebuilt from the "
        f"catalog, so you can move {paths.database_dir} aside and run "
        "`wb review` again"
    )


def _url(port: int, dataset: str, view: str | None = None) -> str:
    url = f"http://{APP_ADDRESS}:{port}/datasets/{dataset}"
    return f"{url}?view={view}" if view else url


def run(args: argparse.Namespace, out: Protocol) -> int:
    ws = Workspace.open(args.workspace)
    paths = review_paths(ws).ensure()
    os.environ.update(fiftyone_env(paths, args.port))
    if args.command == "serve" and port_open(args.port, APP_ADDRESS):
        raise ServiceError(
            f"port {args.port} on {APP_ADDRESS} is already in use; choose another with --port"
        )
    shared = ws.get("review", "database_uri")
    db = ReviewDatabase.connect(paths, shared) if shared else ReviewDatabase.start(paths)
    # Stop the database at exit, registered before FiftyOne registers its own exit
    # hooks: atexit runs last-in first-out, so FiftyOne's cleanup still finds the
    # database up instead of waiting 30 s for a server that is gone.
    atexit.register(db.stop)
    os.environ["FIFTYONE_DATABASE_URI"] = db.uri
    out.send("database", uri=db.uri, pid=db.pid, owned=db.owned)
    try:
        import fiftyone as fo  # noqa: F401  (configuration is read here)
        import fiftyone.core.odm.database as fodb

        fodb.get_db_conn()
    except WorkbenchError:
        raise
    except Exception as exc:  # pymongo / FiftyOne config errors: unusable database
        raise _database_error(exc, paths, db) from exc

    from .build import build_review_dataset, describe_review_dataset

    if args.command == "describe":
        out.send("described", **describe_review_dataset(ws))
        return 0
    if args.command == "select":  # `wb review send`: a saved view's / tagged samples
        from .selection import select_samples

        out.send("selected", **select_samples(ws, view=args.view, tag=args.tag))
        return 0
    from .label_errors import Thresholds

    thresholds = Thresholds(**json.loads(args.thresholds)) if args.thresholds else None
    summary = build_review_dataset(
        ws,
        model=args.model,
        thresholds=thresholds,
        on_progress=lambda done, total: out.send("progress", done=done, total=total),
        on_stage=lambda stage, info: out.send("stage", stage=stage, info=info),
    )
    out.send("built", summary=summary)
    if args.command == "serve":
        _serve(summary["dataset"], args.port, out)
    return 0


def _serve(name: str, port: int, out: Protocol) -> None:
    import fiftyone as fo
    import fiftyone.core.utils as fou

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ds = fo.load_dataset(name)
    fo.launch_app(ds, remote=True, address=APP_ADDRESS, port=port, auto=False)
    out.send(
        "ready",
        url=_url(port, name),
        port=port,
        views={v: _url(port, name, fou.to_slug(v)) for v in ds.list_saved_views()},
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping the App on port %d", port)
        fo.close_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.review.worker")
    parser.add_argument("command", choices=("build", "serve", "describe", "select"))
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--port", type=int, default=DEFAULT_APP_PORT)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--view", default=None, help="select: a saved view's name")
    parser.add_argument("--tag", default=None, help="select: only samples/labels tagged so")
    parser.add_argument("--thresholds", default=None, help="build/serve: label-error ones, JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=max(logging.WARNING - 10 * args.verbose, logging.DEBUG),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = _private_stdout()
    try:
        return run(args, out)
    except WorkbenchError as exc:
        out.send("error", message=str(exc))
        return 1
    except Exception as exc:  # report, then fail loudly: the parent shows the message
        log.exception("review worker failed")
        out.send("error", message=f"the FiftyOne worker failed: {type(exc).__name__}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
