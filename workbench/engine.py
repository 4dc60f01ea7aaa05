"""Where the heavy per-image work runs: this machine's cores, or a Ray cluster.

Two shapes of work, the same for every engine:

- ``map_tasks(fn, chunks)``: ``fn(chunk)`` is a pure function (hashing); each chunk is
  a task, results come back as they finish, in any order.
- ``map_with_model(factory, call, chunks)``: a model is built once per worker by
  ``factory()`` and ``call(model, chunk)`` runs on it (prediction, embeddings). On Ray
  each worker is an actor holding one model, with a GPU of its own when the cluster
  has them.

Results stream back to the caller, which alone writes the catalog (in batches, so an
interrupted run keeps what it got and a re-run continues from there). ``local`` is
today's code path and never imports Ray; ``ray`` needs the optional extra
(``pip install 'workbench[ray]'``) and a running cluster whose nodes see the catalog's
image paths (a shared file system) and have workbench's dependencies installed. The
driver ships its own ``workbench`` package to the workers, so they run the same code.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import WorkbenchError, check_choice

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
DEFAULT_ENGINE = "local"
SETTINGS_SECTION = "engine"  # workbench.toml: [engine] name, ray_address
RAY_EXTRA = "pip install 'workbench[ray]'"
CONNECT_TIMEOUT_S = 5.0
TASKS_IN_FLIGHT_PER_CPU = 2  # enough queued work to keep every worker busy


class EngineError(WorkbenchError):
    """The engine could not start, reach its cluster, or run a piece of work."""


class RayUnreachable(EngineError):
    pass


class WorkerCannotRead(EngineError):
    """A file the driver can read is not readable on a worker node."""


@dataclass(frozen=True)
class EngineSpec:
    """Which engine and, for Ray, the cluster's address (``host:port`` of the head's
    GCS, as ``ray start --head --port`` printed, or ``ray://host:10001``)."""

    name: str = DEFAULT_ENGINE
    address: str | None = None

    def __post_init__(self):
        check_choice("engine", self.name, ENGINES, error=EngineError)


def engine_spec(ws=None, name: str | None = None, address: str | None = None) -> EngineSpec:
    """The engine a command runs on: its option if given, else the workspace's
    ``[engine] name`` / ``ray_address``, else ``local``. A Ray address may also come
    from ``RAY_ADDRESS``."""
    get = (lambda key: ws.get(SETTINGS_SECTION, key)) if ws is not None else (lambda key: None)
    name = name or get("name") or DEFAULT_ENGINE
    address = address or get("ray_address") or os.environ.get("RAY_ADDRESS") or None
    return EngineSpec(name, address if name == "ray" else None)


def open_engine(spec: EngineSpec | None = None) -> Engine:
    """An engine for ``spec`` (default local); use it as a context manager so a Ray
    connection is closed."""
    spec = spec or EngineSpec()
    return RayEngine(spec.address) if spec.name == "ray" else LocalEngine()


class Engine:
    name = ""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def workers(self) -> int:
        raise NotImplementedError

    def map_tasks(
        self,
        fn: Callable[[Any], Any],
        chunks: Iterable[Any],
        workers: int | None = None,
        initializer: Callable[[], None] | None = None,
    ) -> Iterator[Any]:
        raise NotImplementedError

    def map_with_model(
        self,
        factory: Callable[[], Any],
        call: Callable[[Any, Any], Any],
        chunks: Iterable[Any],
        workers: int | None = None,
    ) -> Iterator[Any]:
        raise NotImplementedError


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LocalEngine(Engine):
    """This machine: worker processes for tasks, the calling process for a model
    (torch already uses the cores)."""

    name = "local"

    def workers(self) -> int:
        return available_cores()

    def map_tasks(self, fn, chunks, workers=None, initializer=None):
        chunks = list(chunks)
        workers = min(self.workers() if workers is None else workers, len(chunks))
        if workers <= 1:
            yield from map(fn, chunks)
            return
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, initializer=initializer) as pool:
            yield from pool.map(fn, chunks)

    def map_with_model(self, factory, call, chunks, workers=None):
        model = None
        for chunk in chunks:
            model = factory() if model is None else model
            yield call(model, chunk)


# ---- Ray ------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineError(
            f"the ray engine needs Ray, which is not installed: {RAY_EXTRA}; "
            "or run on this machine (--engine local)"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _check_reachable(address: str) -> None:
    """Fail in seconds, naming the address (Ray itself retries for a minute or more)."""
    import socket

    hp = _host_port(address)
    if hp is None:
        raise RayUnreachable(
            f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379, or "
            "ray://10.0.0.5:10001); set --ray-address or [engine] ray_address"
        )
    try:
        socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RayUnreachable(
            f"Ray cluster at {address} is unreachable ({exc.strerror or exc}); start it "
            "with `ray start --head` there, or fix --ray-address / [engine] ray_address"
        ) from None


class _ModelWorker:
    """A Ray actor holding one model built by ``factory``."""

    def __init__(self, factory):
        self.model = factory()

    def run(self, call, chunk):
        return call(self.model, chunk)


class RayEngine(Engine):
    """A Ray cluster: tasks for ``map_tasks``, an actor pool (one model per actor, a
    GPU per actor when the cluster has GPUs) for ``map_with_model``."""

    name = "ray"

    def __init__(self, address: str | None):
        if not address:
            raise EngineError(
                "the ray engine needs the cluster's address: --ray-address HOST:PORT, "
                "[engine] ray_address in workbench.toml, or RAY_ADDRESS"
            )
        self.address = address
        _import_ray()
        _check_reachable(address)  # up front: a long run must not fail at its end
        self._ray = None
        self._owned = False

    def _connect(self):
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        package = str(Path(__file__).resolve().parent)
        try:
            if not ray.is_initialized():
                ray.init(
                    address=self.address,
                    runtime_env={"py_modules": [package], "excludes": ["__pycache__"]},
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
                self._owned = True
        except Exception as exc:  # ConnectionError, RuntimeError, version mismatch...
            raise RayUnreachable(
                f"cannot connect to the Ray cluster at {self.address}: {type(exc).__name__}: {exc}"
            ) from None
        self._ray = ray
        return ray

    def close(self) -> None:
        if self._ray is not None and self._owned:
            self._ray.shutdown()
        self._ray, self._owned = None, False

    def resources(self) -> dict[str, float]:
        return dict(self._connect().cluster_resources())

    def workers(self) -> int:
        """The cluster's CPUs: what tasks run on."""
        return max(1, int(self.resources().get("CPU", 1)))

    def _get(self, ref):
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            self._raise_from(exc)

    def map_tasks(self, fn, chunks, workers=None, initializer=None):
        """``workers`` given: at most that many tasks at once; else enough queued to
        keep every CPU of the cluster busy. Tasks are spread over the nodes (reading
        files is the cost: every node's disks and network take a share), and a task
        lost with its worker is retried."""
        ray = self._connect()
        task = ray.remote(num_cpus=1, max_retries=3, scheduling_strategy="SPREAD")(fn)
        in_flight = workers or self.workers() * TASKS_IN_FLIGHT_PER_CPU
        pending: list = []
        todo = iter(chunks)
        while True:
            for chunk in todo:
                pending.append(task.remote(chunk))
                if len(pending) >= in_flight:
                    break
            if not pending:
                return
            done, pending = ray.wait(pending, num_returns=1)
            yield self._get(done[0])

    def map_with_model(self, factory, call, chunks, workers=None):
        chunks = list(chunks)
        if not chunks:  # no actor (and no model load) for no work
            return
        ray = self._connect()
        from ray.util import ActorPool

        gpus = int(self.resources().get("GPU", 0))
        n = min(workers or gpus or self.workers(), len(chunks))  # one per GPU, else CPU
        if gpus:
            # every actor on a GPU; asked for more actors than GPUs, they share them in
            # equal parts. A whole GPU each, or Ray's default of a CPU held by each GPU
            # actor, would leave the actors that do not fit, and the chunks given to
            # them, waiting for ever (seen with two actors on a node of one GPU, one CPU)
            per_actor = {"num_gpus": 1.0 / math.ceil(n / gpus), "num_cpus": 0}
        else:
            per_actor = {"num_cpus": 1}
        actor = ray.remote(
            max_restarts=2, max_task_retries=2, scheduling_strategy="SPREAD", **per_actor
        )(_ModelWorker)
        actors = [actor.remote(factory) for _ in range(n)]
        pool = ActorPool(actors)
        try:
            results = pool.map_unordered(lambda a, chunk: a.run.remote(call, chunk), chunks)
            while True:
                try:
                    yield next(results)
                except StopIteration:
                    return
                except ray.exceptions.RayError as exc:
                    self._raise_from(exc)
        finally:
            for a in actors:
                ray.kill(a)

    def _raise_from(self, exc):
        ray = self._ray
        if isinstance(exc, ray.exceptions.RayTaskError):
            cause = getattr(exc, "cause", None)
            if isinstance(cause, WorkbenchError):
                raise cause from None
            raise EngineError(f"a Ray worker failed: {cause!r}") from None
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        if getattr(exc, "actor_init_failed", False) and lines:
            # the traceback's last line is the exception that the model's loading raised
            raise EngineError(f"a Ray worker could not load its model: {lines[-1]}") from None
        first = (lines or [type(exc).__name__])[0]
        raise EngineError(
            f"a Ray worker could not start or was lost beyond its retries ({first}); "
            "the results already received are kept: re-run to continue"
        ) from None


def check_worker_read(path: str, reason: str, engine: Engine) -> None:
    """A file a worker could not open at all (not a bad image) that the driver can
    read: the cluster does not see the catalog's paths, so marking the image
    unreadable would be wrong. Raise, naming the file."""
    from .images import CANNOT_READ

    if engine.name == "local" or not reason.startswith(CANNOT_READ):
        return
    if os.access(path, os.R_OK):
        raise WorkerCannotRead(
            f"{path} is readable here but not on a Ray worker ({reason}); every node must "
            "see the catalog's image paths (mount the same shared file system at the "
            "same place), or run with --engine local. Results so far are kept."
        )
