"""Child processes that ``wb`` starts and stops: Label Studio, MongoDB, the FiftyOne
worker and ``wb serve`` (in ``wb demo``). Each caller keeps its own recipe (command
line, environment, health check, messages); the rules live here:

- a child starts in its own session (a Ctrl-C in the terminal reaches only ``wb``,
  and stopping the child's process group reaches only the child), with stdin closed
  and its output appended to a log file;
- waiting until it is healthy also watches the process: a child that exits while we
  wait raises a ``ServiceError`` quoting the tail of its log, a timeout says what we
  waited for and where the log is; either way (or on Ctrl-C) the child is stopped;
- stopping sends SIGTERM (or the child's own stop signal), then SIGKILL after a grace
  period, and reaps the child, so it leaves no zombie;
- a PID file (JSON with at least ``pid``) lets another ``wb`` process find a running
  server. A recorded PID counts only while that process is alive (not a zombie) and its
  command line is still the server's, since PIDs are recycled.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ServiceError
from .fsutil import atomic_write_json, process_exists, remove_leftover_temps

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
ProgressFn = Callable[[int, int], None]
_PR_SET_PDEATHSIG = 1


# ---- ports ---------------------------------------------------------------------------
def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on now (the kernel's pick; free until someone binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether ``port`` can be bound on ``host`` now, as a server binds it: with
    ``SO_REUSEADDR``, so sockets of a crashed server left in TIME_WAIT do not count as in
    use (a listening socket still does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on ``port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---- processes by PID ----------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie counts as gone, and is reaped if it is our child."""
    try:
        # reap it if it is our own child (a zombie still answers kill(0))
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    if not process_exists(pid):
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            zombie = stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True
        if zombie:  # it exited between the waitpid above and now: reap it if ours
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        return not zombie
    return True


def command_line(pid: int) -> list[str] | None:
    """The process's arguments from ``/proc``; None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def still_running(pid: int, is_ours: Callable[[list[str]], bool]) -> bool:
    """Whether ``pid`` is alive and still the program we recorded (``is_ours`` judges its
    command line: a recycled PID belongs to some other program). Without ``/proc``
    (macOS) the PID is trusted."""
    if not pid_alive(pid):
        return False
    argv = command_line(pid)
    if argv is None:
        return not Path("/proc").is_dir()
    return is_ours(argv)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def stop(
    target: subprocess.Popen | int,
    timeout: float = 20.0,
    *,
    name: str = "the process",
    first_signal: int = signal.SIGTERM,
    group: bool = True,
) -> bool:
    """Stop a process: ``first_signal``, then SIGKILL after ``timeout`` seconds, and reap
    it. Returns False when it was not running.

    ``target`` is our ``Popen`` (its return code is then kept) or a PID from a PID file.
    With ``group``, a process that leads its own process group (we started it in its own
    session) is signalled with its group, so its children stop with it.
    """
    proc = target if isinstance(target, subprocess.Popen) else None
    pid = proc.pid if proc is not None else int(target)

    def alive() -> bool:
        return proc.poll() is None if proc is not None else pid_alive(pid)

    def gone_within(seconds: float, step: float) -> bool:
        if proc is not None:
            try:
                proc.wait(seconds)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(step)
        return not pid_alive(pid)

    if not alive():
        return False
    own_group = group and _pgid(pid) == pid

    def send(sig: int) -> None:
        try:
            if own_group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    send(first_signal)
    if gone_within(timeout, 0.2):
        return True
    log.warning(
        "%s (pid %s) ignored %s for %.0f s; sending SIGKILL",
        name,
        pid,
        signal.Signals(first_signal).name,
        timeout,
    )
    send(signal.SIGKILL)
    if not gone_within(5.0, 0.1):
        log.warning("%s (pid %s) is still there 5 s after SIGKILL", name, pid)
    return True


# ---- PID files -----------------------------------------------------------------------
def write_pid_file(path: Path, record: Mapping) -> None:
    """Record a running server (``record`` holds at least ``pid``), atomically."""
    remove_leftover_temps(Path(path).parent)  # what a killed writer left
    atomic_write_json(path, dict(record))


def read_pid_file(path: Path, is_ours: Callable[[list[str]], bool]) -> dict | None:
    """The record at ``path`` while its process runs (see ``still_running``), else None.
    A record that is unreadable or whose process is gone is removed."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        record = None
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        pid = None
    if pid is None or not still_running(pid, is_ours):
        remove_pid_file(path)
        return None
    return record


def remove_pid_file(path: Path, pid: int | None = None) -> None:
    """Remove the PID file; with ``pid``, only when it still records that process (a
    newer server's file stays)."""
    path = Path(path)
    if pid is not None:
        try:
            if json.loads(path.read_text()).get("pid") != pid:
                return
        except (OSError, ValueError, AttributeError):
            return
    path.unlink(missing_ok=True)


# ---- children we start ---------------------------------------------------------------
def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, for an error message."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _preexec(die_with_parent: bool, stop_signal: int):
    """The child's ``preexec_fn``, or None.

    ``die_with_parent``: the child gets SIGTERM when the thread that started it ends.
    A signal ignored in ``wb`` stays ignored in what it starts (a script's background
    job ignores SIGINT), so the signal that will stop the child is put back to its
    default: stopping it then works first time instead of waiting for SIGKILL."""
    reset = signal.getsignal(stop_signal) == signal.SIG_IGN
    die = die_with_parent and sys.platform.startswith("linux")
    if not (reset or die):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls into it

    def run() -> None:  # in the child, before exec: libc calls only, no lock to hold
        if reset:
            libc.signal(stop_signal, 0)  # SIG_DFL
        if die:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return run


@dataclass
class ManagedProcess:
    """A child we started: its process, its log, and how it is stopped."""

    name: str  # for messages: "Label Studio", "the review database"
    process: subprocess.Popen
    log_path: Path
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 20.0
    signal_group: bool = True  # False: the child stops its own children, in order

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def wait_healthy(
        self,
        check: Callable[[], bool],
        timeout: float,
        *,
        interval: float = 1.0,
        waiting_for: str = "answer",
        hint: str = "",
        on_progress: ProgressFn | None = None,
        exit_message: Callable[[int], str] | None = None,
    ) -> None:
        """Poll ``check`` every ``interval`` s until it is true, watching the process.

        The child exiting first raises ``ServiceError`` (``exit_message(code)``, by
        default the tail of its log); so does ``timeout``: "<name> did not
        <waiting_for> within N s<hint>", with the log's tail. On any failure, Ctrl-C
        included, the child is stopped. ``on_progress(waited, timeout)`` runs each poll.
        """
        try:
            start = time.monotonic()
            while True:
                waited = time.monotonic() - start
                if on_progress:
                    on_progress(int(min(waited, timeout)), int(timeout))
                if check():
                    return
                code = self.process.poll()
                if code is not None:
                    raise ServiceError(
                        exit_message(code)
                        if exit_message
                        else f"{self.name} exited with code {code} while starting. "
                        f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                    )
                if waited > timeout:
                    raise ServiceError(
                        f"{self.name} did not {waiting_for} within {timeout:.0f} s{hint}. "
                        f"See {self.log_path}:\n{log_tail(self.log_path)}"
                    )
                time.sleep(interval)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float | None = None) -> bool:
        """Stop and reap it (see ``stop``); False when it had already ended."""
        return stop(
            self.process,
            self.stop_timeout if timeout is None else timeout,
            name=self.name,
            first_signal=self.stop_signal,
            group=self.signal_group,
        )


def as_user(uid: int | None) -> dict:
    """``Popen`` arguments that drop to ``uid`` (its primary group, no others)."""
    if uid is None or uid == os.geteuid():
        return {}
    import pwd

    entry = pwd.getpwuid(uid)
    return {"user": uid, "group": entry.pw_gid, "extra_groups": []}


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout_pipe: bool = False,
    die_with_parent: bool = False,
    stop_signal: int = signal.SIGTERM,
    stop_timeout: float = 20.0,
    signal_group: bool = True,
    user: int | None = None,
) -> ManagedProcess:
    """Start ``argv`` in its own session with stdin closed and its output appended to
    ``log_path`` (with ``stdout_pipe``, only stderr: stdout is then ``.process.stdout``,
    for a child that reports events). ``die_with_parent``: Linux sends the child SIGTERM
    when the thread that started it ends, so a killed ``wb`` leaves nothing behind.
    ``user``: run it as this uid (and that user's primary group; only root may), for
    a server that refuses to run as root (PostgreSQL).
    ``OSError`` when the program cannot be run."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out if stdout_pipe else subprocess.STDOUT,
            start_new_session=True,
            # the child only calls prctl/signal before exec: no lock a thread could hold
            preexec_fn=_preexec(die_with_parent, stop_signal),  # noqa: PLW1509
            **as_user(user),
        )
    return ManagedProcess(name, process, log_path, stop_signal, stop_timeout, signal_group)
