"""A throw-away Ray cluster on 127.0.0.1 for the engine's tests: a head node and any
number of worker nodes, each a ``ray start --block`` child process of the test.

``ray stop`` signals every process on the machine whose name matches Ray's, whoever
started it (other people's clusters too), so this never calls it: each node is stopped through its own ``ray
start --block`` process (SIGTERM: it ends the raylet and the processes it started),
then anything left in that node's process group is ended by PID. Every port is picked
free and the session files live in a private temp folder, so clusters of parallel test
runs do not meet.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY_BIN = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    lo = free_port()
    # worker processes need a port range of their own; take one above a free port, and
    # keep every other port out of it (Ray refuses a port used twice: seen in CI)
    base = 20000 + (lo % 20000)
    workers = range(base, base + 201)

    def outside() -> int:
        while (port := free_port()) in workers:
            pass
        return port

    return [
        f"--node-manager-port={outside()}",
        f"--object-manager-port={outside()}",
        f"--runtime-env-agent-port={outside()}",
        f"--dashboard-agent-grpc-port={outside()}",
        f"--dashboard-agent-listen-port={outside()}",
        f"--metrics-export-port={outside()}",
        f"--min-worker-port={base}",
        f"--max-worker-port={base + 200}",
    ]


def can_hide_folders() -> bool:
    """Worker nodes can be started in a mount namespace (root and ``unshare``)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


class RayCluster:
    """``with RayCluster(workers=1) as c: c.address``: a head plus ``workers`` worker
    nodes, each with ``cpus`` CPUs. ``hide``: a folder the worker nodes do not see (an
    empty tmpfs over it in their own mount namespace), as a node without the shared
    file system would; needs ``can_hide_folders()``. ``worker_gpus``: GPUs each worker
    node declares (Ray takes the count as given, so a node without one can stand in for
    a GPU node: its actors get a GPU id and ``CUDA_VISIBLE_DEVICES``)."""

    def __init__(
        self, workers: int = 1, cpus: int = 1, hide: Path | None = None, worker_gpus: int = 0
    ):
        self.n_workers, self.cpus, self.hide = workers, cpus, hide
        self.worker_gpus = worker_gpus
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="wbray")  # short: unix socket paths
        self.nodes: list[subprocess.Popen] = []
        self.sessions: set[int] = set()  # each node's `ray start` leads its own session
        self.logs: list[Path] = []

    def _start(self, args: list[str], hide: Path | None = None) -> subprocess.Popen:
        log = Path(self.temp_dir) / f"node{len(self.nodes)}.log"
        self.logs.append(log)
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        cmd = [
            str(RAY_BIN),
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            "--disable-usage-stats",
            *_node_ports(),
            *args,
        ]
        if hide is not None:  # unshare and sh exec: the PID stays the node's
            mount = 'mount -t tmpfs none "$0" && exec "$@"'
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(hide), *cmd]
        proc = subprocess.Popen(
            cmd,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own session: what it starts is found by it
        )
        self.nodes.append(proc)
        self.sessions.add(proc.pid)
        return proc

    def _wait_for(self, nodes: int) -> None:
        import ray

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for proc, log in zip(self.nodes, self.logs):
                if proc.poll() is not None:
                    raise RuntimeError(f"ray node exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.5)
                continue
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
                alive = [n for n in ray.nodes() if n["Alive"]]
                ray.shutdown()
                if len(alive) >= nodes:
                    return
            except Exception:
                ray.shutdown()
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {nodes} nodes in {START_TIMEOUT_S} s")

    def leftover_pids(self) -> list[int]:
        """Processes still alive in the sessions of this cluster's nodes (each node's
        ``ray start`` leads a session of its own, and all it starts stay in it)."""
        sessions, found = self.sessions, []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) in sessions:
                    found.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
        return found

    def start(self) -> RayCluster:
        self._start(
            [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                "--num-gpus=0",
                f"--temp-dir={self.temp_dir}",
            ]
        )
        self._wait_for(1)
        for _ in range(self.n_workers):
            self._start(
                [f"--address={self.address}", f"--num-gpus={self.worker_gpus}"], hide=self.hide
            )
        self._wait_for(1 + self.n_workers)
        return self

    def stop(self) -> None:
        for proc in reversed(self.nodes):  # workers first, the head last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.nodes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.leftover_pids():  # what a node left behind, by PID
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
