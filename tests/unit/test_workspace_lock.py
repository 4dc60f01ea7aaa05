"""One writer per workspace (issue 16, item 1): a real ``fcntl.flock`` held by another
process, released by the OS when that process dies (kill -9 included); writers wait,
then exit 1 naming the holder; readers never wait."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.lock import LOCK_NAME, WorkspaceBusy, WorkspaceLock, read_holder

REPO = Path(__file__).resolve().parents[2]

# holds the lock of workspace argv[1] as command argv[2]; prints "held"; releases when
# stdin closes (or after argv[3] seconds); with argv[4], first starts that child command
HOLDER = """
import subprocess, sys, threading
from workbench.lock import WorkspaceLock
lock = WorkspaceLock(sys.argv[1] + "/workbench.lock", sys.argv[2])
lock.acquire(wait=0)
if len(sys.argv) > 4:
    child = subprocess.Popen(sys.argv[4:])
    print(child.pid, flush=True)
print("held", flush=True)
t = threading.Thread(target=sys.stdin.read, daemon=True)
t.start()
t.join(float(sys.argv[3]))
lock.release()
"""


def hold(root: Path, command: str = "wb push", seconds: float = 60, child: list[str] = ()):
    """A second process that holds the workspace lock until its stdin is closed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), command, str(seconds), *child],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = [p.stdout.readline().strip()]
    if child:
        lines.append(p.stdout.readline().strip())
    assert lines[-1] == "held", lines
    return p, (int(lines[0]) if child else None)


def let_go(p: subprocess.Popen) -> None:
    p.stdin.close()
    p.wait(10)


@pytest.fixture
def ws(workspace_factory):
    return workspace_factory(classes=["cat", "dog"])


@pytest.fixture
def photos(tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32 + i, 24), (40 * i, 90, 10)).save(root / label / f"{i}.png")
    return root


def wb(ws, *args, wait: float = 0.5, **env):
    return CliRunner().invoke(
        cli, ["-w", str(ws.root), *args], env={"WB_LOCK_WAIT": str(wait), **env}
    )


def test_a_second_process_cannot_take_the_lock_and_is_told_who_holds_it(tmp_path):
    holder, _ = hold(tmp_path, "wb push")
    try:
        t0 = time.monotonic()
        with pytest.raises(WorkspaceBusy) as err:
            WorkspaceLock(tmp_path / LOCK_NAME, "wb ingest").acquire(wait=0.3)
        waited = time.monotonic() - t0
    finally:
        let_go(holder)
    assert 0.3 <= waited < 3
    assert err.value.holder.pid == holder.pid and err.value.holder.command == "wb push"
    msg = str(err.value)
    assert f"`wb push` (pid {holder.pid}, started " in msg and " UTC)" in msg
    assert "run `wb ingest` again" in msg and "WB_LOCK_WAIT" in msg
    # released: the same call now succeeds at once, and names its own holder
    with WorkspaceLock(tmp_path / LOCK_NAME, "wb ingest"):
        assert read_holder(tmp_path / LOCK_NAME).pid == os.getpid()
    assert read_holder(tmp_path / LOCK_NAME) is None  # a clean release leaves no record


def test_kill_9_releases_the_lock_and_the_stale_record_does_not_block(tmp_path):
    holder, _ = hold(tmp_path, "wb retrain")
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    stale = read_holder(tmp_path / LOCK_NAME)
    assert stale.pid == holder.pid  # the text survives the crash...
    assert "has ended" in stale.describe()  # ...and says so when shown
    t0 = time.monotonic()
    lock = WorkspaceLock(tmp_path / LOCK_NAME, "wb push")
    lock.acquire(wait=5)  # ...but only the OS lock counts: taken at once
    try:
        assert time.monotonic() - t0 < 1
        assert read_holder(tmp_path / LOCK_NAME).command == "wb push"
    finally:
        lock.release()


def test_a_child_process_started_by_the_holder_does_not_keep_the_lock(tmp_path):
    # e.g. `wb ls start` or the demo's `wb serve`: they outlive the writer
    holder, child = hold(tmp_path, "wb demo", child=["sleep", "30"])
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with WorkspaceLock(tmp_path / LOCK_NAME, "wb push") as lock:
            assert lock.held
        os.kill(child, 0)  # the child still runs
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_writer_refused_by_the_lock_exits_1_with_one_clear_message(ws, photos):
    holder, _ = hold(ws.root, "wb push")
    try:
        r = wb(ws, "ingest", str(photos), wait=0.5)
    finally:
        let_go(holder)
    assert r.exit_code == 1
    assert r.output.count("\n") == 2, r.output  # the waiting line, then the error
    assert f"waiting up to 0.5 s: `wb push` (pid {holder.pid}, started " in r.output
    assert (
        f"is being changed by `wb push` (pid {holder.pid}" in r.output
        and "`wb ingest` waited 0.5 s and did nothing" in r.output
        and "run `wb ingest` again" in r.output
    )
    assert "Traceback" not in r.output
    with ws.open_catalog() as catalog:
        assert catalog.images() == []  # nothing was written


def test_a_writer_waits_for_the_holder_then_runs(ws, photos):
    holder, _ = hold(ws.root, "wb pull", seconds=1.0)  # lets go by itself after 1 s
    r = wb(ws, "ingest", str(photos), "--json", wait=20)
    holder.wait(10)
    assert r.exit_code == 0, r.output
    assert f"waiting up to 20 s: `wb pull` (pid {holder.pid}" in r.stderr
    assert json.loads(r.stdout)["added"] == 6


def test_readers_never_wait_for_the_lock(ws, photos, tmp_path):
    assert wb(ws, "ingest", str(photos)).exit_code == 0
    holder, _ = hold(ws.root, "wb retrain")
    try:
        t0 = time.monotonic()
        status = wb(ws, "status", "--json", wait=30)
        export = wb(ws, "export", "--format", "coco", "--out", str(tmp_path / "o.json"), wait=30)
        models = wb(ws, "models", wait=30)
        elapsed = time.monotonic() - t0
    finally:
        let_go(holder)
    for r in (status, export, models):
        assert r.exit_code == 0, r.output
        assert "waiting" not in r.output
    assert json.loads(status.stdout)["images"]["total"] == 6
    assert "exported 6 images" in export.output
    assert elapsed < 15  # each would have waited 30 s


def test_torchrun_ranks_other_than_0_work_under_rank_0s_lock(ws, photos):
    holder, _ = hold(ws.root, "wb retrain")
    try:
        other = wb(ws, "ingest", str(photos), wait=0.2, RANK="1")
        rank0 = wb(ws, "ingest", str(photos), wait=0.2, RANK="0")
    finally:
        let_go(holder)
    assert other.exit_code == 0, other.output
    assert rank0.exit_code == 1 and "`wb retrain`" in rank0.output


def test_a_missing_workspace_is_still_the_usual_error_and_no_folder_is_made(tmp_path):
    r = CliRunner().invoke(cli, ["-w", str(tmp_path / "nope"), "ingest", str(tmp_path)])
    assert r.exit_code == 1 and "no workspace at" in r.output and "wb --workspace" in r.output
    assert not (tmp_path / "nope").exists()


def test_init_holds_the_lock_of_the_workspace_it_creates(tmp_path):
    root = tmp_path / "new"
    root.mkdir()
    holder, _ = hold(root, "wb init")
    try:
        r = CliRunner().invoke(cli, ["-w", str(root), "init"], env={"WB_LOCK_WAIT": "0.2"})
    finally:
        let_go(holder)
    assert r.exit_code == 1 and "`wb init` (pid" in r.output
    assert not (root / "workbench.toml").exists()
    r = CliRunner().invoke(cli, ["-w", str(root), "init", "--classes", "cat"])
    assert r.exit_code == 0, r.output


def _commands(group: click.Group, prefix: str = "wb"):
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        path = f"{prefix} {name}"
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)


def test_the_writers_are_the_commands_docs_operations_lists():
    marked = {p for p, c in _commands(cli) if getattr(c.callback, "writes_workspace", False)}
    text = (REPO / "docs" / "operations.md").read_text()
    block = text.split("<!-- writers:")[1].split("<!-- /writers -->")[0]
    listed = set(re.findall(r"^- `(wb [a-z -]+)`", block, flags=re.M))
    assert marked == listed
    # and every other command is named among those that never wait
    readers = text.split("<!-- /writers -->")[1].split("\n## ")[0]
    for path, cmd in _commands(cli):
        if path in marked or (isinstance(cmd, click.Group) and not cmd.invoke_without_command):
            continue  # a writer, or a group that only holds subcommands (`wb ls`)
        named = f"`{path}`" in readers or (
            path.startswith("wb ls ") and "`wb ls start|stop|status`" in readers
        )
        assert named, f"{path}: say in docs/operations.md whether it takes the lock"


def test_a_postponed_background_retrain_keeps_the_webhook_answering(ws, caplog):
    from fastapi.testclient import TestClient

    from workbench.backend import BackendSettings, ModelHolder, RetrainWorker, create_app

    runs = []
    worker = RetrainWorker(
        lambda: runs.append(1) or {"versions": []},
        ws.open_catalog,
        threshold=1,
        workspace_lock=lambda: ws.lock("wb serve --retrain-after 1"),
    )
    holder = ModelHolder(lambda v: None, lambda: None, poll_seconds=60)
    client = TestClient(create_app(holder, ws.open_catalog, BackendSettings(), retrainer=worker))
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}, "task": {"id": 2}}

    push, _ = hold(ws.root, "wb push")
    try:
        res = client.post("/webhook", json=event)
    finally:
        let_go(push)
    assert res.status_code == 200 and res.json()["retrain_started"] is False
    assert "postponed: `wb push` (pid" in caplog.text and "next annotation" in caplog.text
    with ws.open_catalog() as catalog:
        assert len(catalog.pending_annotation_events()) == 1  # still counted

    # the next event, with the workspace free: the retrain runs, holding the lock
    seen = threading.Event()
    worker._run = lambda: seen.set() or {"held_by": read_holder(ws.root / LOCK_NAME).command}
    assert client.post("/webhook", json=event).json()["retrain_started"] is True
    worker.join(10)
    assert seen.is_set() and worker.last["report"]["held_by"] == "wb serve --retrain-after 1"
    assert read_holder(ws.root / LOCK_NAME) is None  # released after the run


def test_two_ingests_at_once_run_one_after_the_other(ws, tmp_path):
    """D2: two `wb ingest` of one folder at once gave a raw IntegrityError traceback."""
    from PIL import Image

    folder = tmp_path / "many"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(60):
            Image.new("RGB", (40, 30), (i * 4, 20, 200)).save(folder / label / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(REPO), "WB_LOCK_WAIT": "60"}
    cmd = [sys.executable, "-m", "workbench", "-w", str(ws.root), "ingest", str(folder), "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("Traceback" in err for _, err in outs), outs
    results = sorted((json.loads(out)["added"], json.loads(out)["unchanged"]) for out, _ in outs)
    assert results == [(0, 120), (120, 0)]  # one cataloged all, the other found them there
    with ws.open_catalog() as catalog:
        assert len(catalog.images()) == 120
