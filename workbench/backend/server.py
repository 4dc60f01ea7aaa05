"""Running the service with uvicorn: in the foreground (`wb serve`) or in a thread
(tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ServiceError
from ..services import free_port


def _server(app, host: str, port: int, log_level: str):
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="off",
    )
    return uvicorn.Server(config)


def run(
    app,
    host: str = "127.0.0.1",
    port: int = 9090,
    log_level: str = "info",
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until interrupted. ``on_started`` runs in a thread once the port listens;
    if it raises, the server stops and the exception is raised here."""
    server = _server(app, host, port, log_level)
    failure: list[BaseException] = []
    if on_started is not None:

        def wait_then_call():
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                try:
                    on_started()
                except BaseException as exc:  # noqa: BLE001 (raised again by run())
                    failure.append(exc)
                    server.should_exit = True

        threading.Thread(target=wait_then_call, name="wb-serve-started", daemon=True).start()
    server.run()
    if failure:
        raise failure[0]


@contextmanager
def running(
    app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", timeout: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its base URL."""
    port = port or free_port(host)
    server = _server(app, host, port, log_level)
    thread = threading.Thread(target=server.run, name="wb-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError(f"the ML backend did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
