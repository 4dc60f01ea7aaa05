"""Child-process supervision with real child processes: start in its own session, wait
until healthy while watching the process, stop with TERM then KILL, PID files, ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from workbench.errors import ServiceError
from workbench.services import (
    free_port,
    pid_alive,
    port_is_free,
    port_open,
    read_pid_file,
    remove_pid_file,
    spawn,
    stop,
    write_pid_file,
)

PY = sys.executable
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ok', flush=True); time.sleep(60)"
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # an exited child not yet reaped by its parent (this test) is gone too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_for_line(path, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}: {content!r}")


def test_a_server_starts_in_its_own_session_turns_healthy_and_stops_with_sigterm(tmp_path):
    port = free_port()
    log_path = tmp_path / "logs" / "http.log"  # its folder is created
    server = spawn(
        "the test server",
        [PY, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path,
    )
    try:
        assert os.getsid(server.pid) == server.pid == os.getpgid(server.pid)
        server.wait_healthy(lambda: port_open(port), timeout=30, interval=0.1)
        assert "Serving HTTP" in log_path.read_text()  # its output goes to the log
        assert not port_is_free(port)
    finally:
        stopped = server.stop(timeout=10)
    assert stopped is True
    assert server.returncode == -signal.SIGTERM
    assert port_is_free(port)  # the port is free again once it stopped
    assert server.stop() is False  # stopping twice is harmless


def test_a_child_that_exits_while_we_wait_raises_with_the_tail_of_its_log(tmp_path):
    code = (
        "import sys; print('\\n'.join(f'line {i}' for i in range(30))); "
        "print('cannot read the config file', flush=True); sys.exit(3)"
    )
    child = spawn("the test server", [PY, "-c", code], tmp_path / "child.log")
    with pytest.raises(ServiceError) as err:
        child.wait_healthy(lambda: False, timeout=30, interval=0.05)
    message = str(err.value)
    assert message.startswith(
        "the test server exited with code 3 while starting. "
        f"Last lines of {tmp_path / 'child.log'}:"
    )
    assert message.endswith("cannot read the config file")
    assert "line 20" in message and "line 10" not in message  # only the tail
    assert child.returncode == 3 and _gone(child.pid)


def test_a_caller_can_word_the_exit_message_itself(tmp_path):
    child = spawn("mongod", [PY, "-c", "raise SystemExit(48)"], tmp_path / "child.log")
    with pytest.raises(ServiceError, match="^port taken: 48$"):
        child.wait_healthy(
            lambda: False,
            timeout=30,
            interval=0.05,
            exit_message=lambda code: f"port taken: {code}",
        )


def test_a_timeout_says_what_was_awaited_and_stops_the_child(tmp_path):
    code = "print('migrating', flush=True); import time; time.sleep(60)"
    child = spawn("Label Studio", [PY, "-c", code], tmp_path / "ls.log")
    polls = []
    with pytest.raises(ServiceError) as err:
        child.wait_healthy(
            lambda: False,
            timeout=1,
            interval=0.1,
            waiting_for="answer http://127.0.0.1:1/health",
            hint=" (the first start runs migrations)",
            on_progress=lambda done, total: polls.append((done, total)),
        )
    assert str(err.value) == (
        "Label Studio did not answer http://127.0.0.1:1/health within 1 s (the first start "
        f"runs migrations). See {tmp_path / 'ls.log'}:\nmigrating"
    )
    assert child.returncode == -signal.SIGTERM and _gone(child.pid)
    assert polls[0] == (0, 1) and polls[-1] == (1, 1)


def test_ctrl_c_while_waiting_stops_the_child(tmp_path):
    child = spawn(
        "the test server", [PY, "-c", "import time; time.sleep(60)"], tmp_path / "child.log"
    )

    def interrupted() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        child.wait_healthy(interrupted, timeout=30)
    assert child.returncode == -signal.SIGTERM


def test_stop_sends_sigkill_to_a_child_that_ignores_sigterm(tmp_path, caplog):
    log_path = tmp_path / "stubborn.log"
    child = spawn("the stubborn server", [PY, "-c", IGNORES_SIGTERM], log_path, stop_timeout=0.5)
    _wait_for_line(log_path, "ok")
    t0 = time.monotonic()
    assert child.stop() is True
    assert time.monotonic() - t0 < 5
    assert child.returncode == -signal.SIGKILL  # reaped: its exit status is known
    assert "the stubborn server (pid" in caplog.text and "ignored SIGTERM" in caplog.text
    assert "sending SIGKILL" in caplog.text


def test_stop_by_pid_sends_sigkill_to_a_process_that_ignores_sigterm(caplog):
    proc = subprocess.Popen(
        [PY, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout.readline().strip() == b"ok"
    t0 = time.monotonic()
    assert stop(proc.pid, timeout=0.5, name="Label Studio") is True
    assert _gone(proc.pid) and time.monotonic() - t0 < 5
    assert "sending SIGKILL" in caplog.text
    assert stop(proc.pid) is False
    proc.stdout.close()


def test_stop_by_pid_stops_a_well_behaved_process_with_sigterm(caplog):
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"], start_new_session=True)
    assert stop(proc.pid, timeout=10) is True
    assert _gone(proc.pid) and "SIGKILL" not in caplog.text


@pytest.mark.parametrize("wb_ignores_sigint", [False, True], ids=["", "sigint-ignored-in-wb"])
def test_stop_can_use_another_first_signal(tmp_path, wb_ignores_sigint):
    # a non-interactive shell's background job (`wb demo &` in a script) ignores SIGINT,
    # and an ignored signal is inherited through exec: the child would wait for SIGKILL
    previous = signal.getsignal(signal.SIGINT)
    if wb_ignores_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        log_path = tmp_path / "serve.log"
        child = spawn(
            "`wb serve`",
            [PY, "-c", "print('ok', flush=True); import time; time.sleep(60)"],
            log_path,
            stop_signal=signal.SIGINT,
            die_with_parent=wb_ignores_sigint,  # both things done before exec
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_for_line(log_path, "ok")
    assert child.stop(timeout=10) is True
    assert child.returncode == -signal.SIGINT  # by SIGINT itself, not the SIGKILL after
    assert "KeyboardInterrupt" in log_path.read_text()  # it stopped as Ctrl-C stops it


def test_a_child_stopped_by_sigterm_keeps_an_ignored_sigint(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = spawn(
            "a worker",
            [
                PY,
                "-c",
                "import signal as s, time; print(s.getsignal(2) == s.SIG_IGN, flush=True); time.sleep(60)",
            ],
            tmp_path / "worker.log",
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert _wait_for_line(tmp_path / "worker.log", "\n").strip() == "True"
    finally:
        child.stop(timeout=10)


def test_stop_reaches_the_childs_own_children_unless_told_not_to(tmp_path):
    code = textwrap.dedent("""
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(grandchild.pid, flush=True)
        time.sleep(60)
    """)
    whole = spawn("a server with a helper", [PY, "-c", code], tmp_path / "a.log")
    alone = spawn(
        "a worker that stops its helpers", [PY, "-c", code], tmp_path / "b.log", signal_group=False
    )
    helper_a = int(_wait_for_line(tmp_path / "a.log", "\n").split()[0])
    helper_b = int(_wait_for_line(tmp_path / "b.log", "\n").split()[0])
    try:
        whole.stop(timeout=10)
        alone.stop(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(helper_a) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(helper_a)
        assert not _gone(helper_b)  # signalled alone: its helper is its own business
    finally:
        for pid in (helper_a, helper_b):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux parent-death signal")
def test_a_child_started_to_die_with_its_parent_does(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from workbench.services import spawn
        child = spawn("db", [sys.executable, "-c", "import time; time.sleep(60)"],
                      {str(tmp_path / "db.log")!r}, die_with_parent=True)
        print(child.pid, flush=True)
    """)
    parent = subprocess.run(
        [PY, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    orphan = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not _gone(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(orphan)


def test_pid_alive_reaps_our_exited_child():
    proc = subprocess.Popen([PY, "-c", "pass"])
    while not _gone(proc.pid):  # exited but not reaped: a zombie
        time.sleep(0.02)
    assert pid_alive(proc.pid) is False
    with pytest.raises(ChildProcessError):  # pid_alive reaped it: no zombie is left
        os.waitpid(proc.pid, os.WNOHANG)


def test_a_pid_file_counts_only_while_its_own_program_runs(tmp_path):
    path = tmp_path / "server.json"
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)", "--marker-xyz"])
    try:
        write_pid_file(path, {"pid": proc.pid, "port": 1234})
        assert json.loads(path.read_text()) == {"pid": proc.pid, "port": 1234}
        assert read_pid_file(path, is_ours=lambda argv: "--marker-xyz" in argv) == {
            "pid": proc.pid,
            "port": 1234,
        }
        # the PID now belongs to some other program (PIDs are recycled): not ours
        assert read_pid_file(path, is_ours=lambda argv: "label-studio" in argv) is None
        assert not path.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_stale_pid_file_is_removed(tmp_path):
    path = tmp_path / "server.json"
    proc = subprocess.Popen([PY, "-c", "pass"])
    proc.wait()
    write_pid_file(path, {"pid": proc.pid, "port": 1})
    assert read_pid_file(path, is_ours=lambda argv: True) is None
    assert not path.exists()
    for junk in ("not json", '{"port": 1}', '{"pid": "x"}', "[1, 2]"):
        path.write_text(junk)
        assert read_pid_file(path, is_ours=lambda argv: True) is None
        assert not path.exists()
    assert read_pid_file(path, is_ours=lambda argv: True) is None  # no file: nothing runs


def test_removing_a_pid_file_for_one_process_keeps_a_newer_servers_file(tmp_path):
    path = tmp_path / "mongod.json"
    write_pid_file(path, {"pid": 222, "port": 2})
    remove_pid_file(path, pid=111)  # our server's record was replaced: leave it
    assert path.exists()
    remove_pid_file(path, pid=222)
    assert not path.exists()
    remove_pid_file(path)  # nothing there: fine


def test_ports_free_and_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert not port_is_free(port)
        assert not port_open(port)  # bound but not listening
        s.listen()
        assert port_open(port)
    assert port_is_free(port)
    assert port_is_free(free_port())


def test_a_port_whose_old_connections_wait_in_time_wait_is_free():
    # a server that closed its side first leaves that connection in TIME_WAIT for ~60 s;
    # a new server binds with SO_REUSEADDR, so the port is free for it (a crashed Label
    # Studio's port was refused for ~20 s before)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server's side closes first: it goes to TIME_WAIT
    time.sleep(0.1)
    client.close()
    listener.close()
    time.sleep(0.1)
    with socket.socket() as plain:  # the state that fooled the old check
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert port_is_free(port)
