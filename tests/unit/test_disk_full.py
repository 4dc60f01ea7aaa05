"""A full disk, however it shows (ENOSPC from a write, SQLite's "database or disk is
full"), ends a `wb` command with one line that names the folder and says what to do,
exit 1, no traceback, and the data as it was; retrain refuses before training when the
space its checkpoints need is not there; killed writers' temporary files go."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from workbench import fsutil
from workbench.cli import cli
from workbench.detection.synthetic import add_synthetic_images
from workbench.errors import DiskFull, human_bytes

torch.set_num_threads(1)
CLASSES = ["red", "blue"]
TINY = [
    "retrain",
    "--backbone",
    "mobilenet_v3",
    "--image-size",
    "64",
    "--max-epochs",
    "1",
    "--batch-size",
    "4",
    "--weights",
    "none",
    "--promote",
    "always",
]
ADVICE = "Free space on that disk (or use a workspace on a larger one with -w)"


def wb(ws, *args):
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args])


def assert_one_line_error(res, folder: Path) -> str:
    """Exit 1, no traceback, and the last line is the whole message, naming ``folder``."""
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and str(folder) in last and ADVICE in last, last
    return last


def enospc(*args) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *args)


def fail_writes_to(monkeypatch, name: str) -> None:
    """Every atomic write of a file called ``name`` fails with ENOSPC in ``write()``,
    as a full disk does (the error names no file)."""
    real = os.fdopen

    def fdopen(fd, *a, **k):
        fh = real(fd, *a, **k)
        target = os.readlink(f"/proc/self/fd/{fd}")
        if Path(target).name.startswith(f".{name}."):

            def write(data):
                raise enospc()

            fh.write = write
        return fh

    monkeypatch.setattr(fsutil.os, "fdopen", fdopen)


class FullAtCommit(sqlite3.Connection):
    """A connection whose COMMIT fails as SQLite's does on a full disk."""

    def execute(self, sql, *args):
        if sql.strip().upper() == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


def integrity(ws) -> str:
    with sqlite3.connect(ws.root / "catalog.sqlite") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


# ---- the rules -----------------------------------------------------------------------
def test_disk_full_recognises_enospc_and_sqlite_full_and_nothing_else(tmp_path):
    copy = enospc(str(tmp_path / "src.pt"), None, str(tmp_path / "models" / "weights.pt"))
    full = fsutil.disk_full(copy, tmp_path / "elsewhere")
    assert full.folder == str(tmp_path)  # the destination's folder (models/ does not exist)
    sql = fsutil.disk_full(sqlite3.OperationalError("database or disk is full"), tmp_path)
    assert sql.folder == str(tmp_path) and sql.free > 0
    assert fsutil.disk_full(OSError(errno.EACCES, "denied"), tmp_path) is None
    assert fsutil.disk_full(sqlite3.OperationalError("no such table: x"), tmp_path) is None
    assert isinstance(full, OSError) and full.errno == errno.ENOSPC


def test_sqlite_io_error_is_a_full_disk_only_when_the_disk_has_no_room(tmp_path, monkeypatch):
    io_error = sqlite3.OperationalError("disk I/O error")  # a full disk's -shm growth
    assert fsutil.disk_full(io_error, tmp_path) is None  # room to spare: another cause
    monkeypatch.setattr(fsutil, "free_bytes", lambda folder: 0)
    assert fsutil.disk_full(io_error, tmp_path).folder == str(tmp_path)


def test_a_write_that_does_not_fit_is_refused_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "free_bytes", lambda folder: 3 << 20)
    with pytest.raises(DiskFull) as err:
        fsutil.atomic_write_bytes(tmp_path / "report.png", b"x" * (5 << 20))
    assert str(err.value).startswith(
        f"not enough space in {tmp_path}: writing report.png needs about 5.0 MB, 3.0 MB free."
    )
    assert list(tmp_path.iterdir()) == []  # not even a temporary file


def test_a_killed_writers_temporary_file_goes_and_a_live_ones_stays(tmp_path):
    dead = tmp_path / ".checkpoint.pt.999999999-abc123.tmp"  # no such PID
    live = tmp_path / f".checkpoint.pt.{os.getpid()}-def456.tmp"
    image = tmp_path / ".holiday.jpg.tmp"  # not a name wb makes: never touched
    for p in (dead, live, image):
        p.write_bytes(b"x")
    assert fsutil.remove_leftover_temps(tmp_path) == [dead]
    assert live.exists() and image.exists()


# ---- through the CLI -----------------------------------------------------------------
def test_sqlite_full_at_commit_during_ingest_is_one_line_and_loses_nothing(
    workspace_factory, demo_data, monkeypatch
):
    ws = workspace_factory()  # the default taxonomy: the demo's classes
    real = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda *a, **k: real(*a, **{**k, "factory": FullAtCommit})
    )
    res = wb(ws, "ingest", str(demo_data / "annotations.json"), "--format", "coco")
    assert_one_line_error(res, ws.root)
    assert "is full" in res.output
    monkeypatch.undo()
    assert integrity(ws) == "ok"
    again = wb(ws, "ingest", str(demo_data / "annotations.json"), "--format", "coco")
    assert again.exit_code == 0, again.output
    assert wb(ws, "status", "--json").output.count('"total": 300') == 1


def test_retrain_refuses_before_training_when_the_checkpoints_would_not_fit(
    workspace_factory, tmp_path, monkeypatch
):
    from workbench.detection import train as train_mod

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "a", CLASSES, 10, size=64)
    monkeypatch.setattr(fsutil, "free_bytes", lambda folder: 4 << 20)

    def never(*a, **k):
        raise AssertionError("trained although the disk could not hold the checkpoint")

    monkeypatch.setattr(train_mod, "train_one_epoch", never)
    res = wb(ws, *TINY)
    last = assert_one_line_error(res, ws.models_dir / ".training")
    # mobilenet_v3's weights (~75 MB) five times: best.pt, the old and the new checkpoint
    assert "training mobilenet_v3 (checkpoints and the model's weights) needs about" in last
    assert "4.0 MB free" in last
    needed = train_mod.disk_space_needed(
        train_mod.build_model(
            train_mod.TrainConfig(backbone="mobilenet_v3", weights="none"), CLASSES
        ),
        tmp_path,
    )
    assert f"needs about {human_bytes(needed)}" in last and needed > 300 << 20


@pytest.mark.slow
def test_enospc_at_the_checkpoint_then_at_the_registry_copy_then_resume(
    workspace_factory, tmp_path, monkeypatch
):
    from workbench.detection import registry as registry_mod

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "a", CLASSES, 10, size=64)
    with monkeypatch.context() as m:
        fail_writes_to(m, "checkpoint.pt")
        res = wb(ws, *TINY)
    assert_one_line_error(res, ws.models_dir / ".training")
    assert not list((ws.models_dir / ".training").glob(".*.tmp"))  # its temp file went

    real_copy = registry_mod.shutil.copyfile

    def copy_fails(src, dst, *a, **k):
        raise enospc(str(src), None, str(dst))  # as shutil's sendfile path raises it

    with monkeypatch.context() as m:
        m.setattr(registry_mod.shutil, "copyfile", copy_fails)
        res = wb(ws, *TINY)
    assert_one_line_error(res, ws.models_dir)
    assert registry_mod.shutil.copyfile is real_copy
    assert not list(ws.models_dir.glob(".incoming-*"))
    assert wb(ws, "models", "--json").output.strip() == "[]"  # nothing half registered
    assert integrity(ws) == "ok"

    resumed = wb(ws, *TINY, "--resume")  # the trained epoch was kept: register it now
    assert resumed.exit_code == 0, resumed.output
    assert "registered v001" in resumed.output


def test_every_command_turns_a_full_disk_into_its_message():
    """One wrapper (``domain_errors``) does it: every command is wrapped."""
    import click

    def leaves(group, prefix=""):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from leaves(cmd, f"{prefix}{name} ")
            elif not cmd.hidden:
                yield f"{prefix}{name}", cmd

    bare = [n for n, c in leaves(cli) if not getattr(c.callback, "handles_domain_errors", 0)]
    assert bare == []


def test_what_killed_runs_left_goes_on_the_next_run_of_the_same_command(
    workspace_factory, tmp_path
):
    """A killed writer's temporary files (its PID gone) in the workspace's folders and in
    an export folder are removed by the next run that writes there; nothing else is."""
    import subprocess

    from workbench.detection.registry import Registry

    gone = subprocess.Popen(["true"])
    gone.wait()  # a PID that no longer runs, as a kill -9 leaves it
    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "photos", CLASSES, 4, size=64)
    out = tmp_path / "export"
    out.mkdir()
    left = {
        "root": ws.root / f".workbench.toml.{gone.pid}-a1b2c3d4.tmp",
        "models": ws.models_dir / f".metrics.json.{gone.pid}-e5f6g7h8.tmp",
        "dedup": ws.reports_dir / "dedup" / f".report.json.{gone.pid}-i9j0k1l2.tmp",
        "export": out / f".annotations.json.{gone.pid}-m3n4o5p6.tmp",
    }
    mine = [out / ".holiday.jpg.tmp", out / "photo.jpg", tmp_path / "photos" / "x.tmp"]
    for p in [*left.values(), *mine]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")

    assert wb(ws, "export", "--format", "coco", "--out", str(out / "a.json")).exit_code == 0
    assert not left["export"].exists()
    assert wb(ws, "dedup", "--no-progress", "--workers", "1").exit_code == 0
    assert not left["dedup"].exists()
    with ws.open_catalog() as cat:
        Registry.of(ws, cat).remove_leftovers()  # what `wb retrain` runs before registering
    assert not left["models"].exists()
    ws.save()  # any command that changes settings
    assert not left["root"].exists()
    assert all(p.read_bytes() == b"partial" for p in mine)  # never anything else
