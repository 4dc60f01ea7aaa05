"""Shared CLI state and option bundles."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

import click

from ..errors import WorkbenchError
from ..fsutil import disk_full
from ..workspace import Workspace, discard_unmade, resolve_workspace_path, workspace_lock


class App:
    """State on ``ctx.obj``: the workspace path, opened lazily."""

    def __init__(self, workspace: str | None):
        self.workspace_path: Path = resolve_workspace_path(workspace)
        self._ws: Workspace | None = None
        self._catalog = None
        self._writing = False

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace.open(self.workspace_path)
        return self._ws

    @property
    def catalog(self):
        if self._catalog is None:
            self._catalog = self.ws.open_catalog()
        return self._catalog

    @contextmanager
    def writing(self, command: str, creates: bool = False):
        """Hold the workspace's one-writer lock for the block (``writes_workspace``).

        Nested use (a command that runs another) holds it once. Under torchrun only rank
        0 takes it: the other ranks are the same `wb retrain`, working under its lock.
        ``creates``: the command makes the workspace (`wb init`, `wb demo`), so its folder
        may not exist yet; otherwise a missing workspace is the usual error."""
        if self._writing or os.environ.get("RANK", "0") != "0":
            yield
            return
        made = creates and not self.workspace_path.exists()
        if creates:
            self.workspace_path.mkdir(parents=True, exist_ok=True)
            lock = workspace_lock(self.workspace_path, command)
        else:
            lock = self.ws.lock(command)

        def say_waiting(holder, wait: float) -> None:
            who = holder.describe() if holder else "another wb process"
            click.echo(f"waiting up to {wait:g} s: {who} is changing this workspace", err=True)

        lock.acquire(on_wait=say_waiting)
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
            lock.release()
            if made:
                discard_unmade(self.workspace_path)  # when the command made nothing

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


pass_app = click.make_pass_decorator(App)


class CodeDefault(click.Option):
    """An option whose default is a constant of the code, given as a function that reads
    it: help shows the value (``show_default``), and the module holding it is imported
    only when a run or ``--help`` needs it (``wb --help`` stays free of torch)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("show_default", True)
        super().__init__(*args, **kwargs)

    def get_default(self, ctx, call=True):
        value = super().get_default(ctx, call=False)
        return value() if callable(value) else value


def engine_options(f):
    """``--engine`` and ``--ray-address``: where the heavy per-image work runs
    (``workbench.engine``); unset, the workspace's ``[engine]`` settings decide."""
    from ..engine import ENGINES

    f = click.option(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="With --engine ray: the cluster's head (as `ray start --head` printed). "
        "Unset: the workspace's [engine] ray_address, else RAY_ADDRESS.",
    )(f)
    return click.option(
        "--engine",
        "engine_name",
        type=click.Choice(ENGINES),
        default=None,
        help="Where hashing, embedding and prediction run: local (this machine's "
        "cores) or ray (a Ray cluster; pip install 'workbench[ray]'). Unset: the "
        "workspace's [engine] name, else local.",
    )(f)


def open_engine_for(app, stack, engine_name: str | None, ray_address: str | None):
    """The engine the options (or the workspace's settings) choose, closed with
    ``stack``."""
    from ..engine import engine_spec, open_engine

    return stack.enter_context(open_engine(engine_spec(app.ws, engine_name, ray_address)))


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def domain_errors(f):
    """Turn domain errors into ClickException (exit 1) with their message; so too a full
    disk, however it shows (``OSError`` ENOSPC, SQLite's "database or disk is full"):
    one line naming the folder and what to do, not a traceback."""

    @wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except WorkbenchError as exc:
            raise click.ClickException(str(exc)) from None
        except (OSError, sqlite3.OperationalError) as exc:
            full = disk_full(exc, _workspace_folder())
            if full is None:
                raise
            raise click.ClickException(str(full)) from None

    wrapper.handles_domain_errors = True  # copied onto outer wrappers: tests look for it
    return wrapper


def _workspace_folder() -> Path:
    """Where a write without a file name (SQLite's) went: the workspace."""
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(App) if ctx is not None else None
    return app.workspace_path if app is not None else Path.cwd()


def writes_workspace(f=None, *, creates: bool = False):
    """Mark a command as a writer: it changes the catalog, the workspace's settings or
    its Label Studio project, so it runs only while it holds the workspace lock (one
    writer at a time; a second one waits ``lock.DEFAULT_WAIT_S`` seconds, then exits 1
    naming the holder). Place it under ``@domain_errors``. The writers are listed in
    docs/operations.md; a unit test keeps that list and these marks equal."""

    def mark(f):
        @wraps(f)
        def wrapper(*args, **kwargs):
            ctx = click.get_current_context()
            if isinstance(ctx.command, click.Group) and ctx.invoked_subcommand is not None:
                return f(*args, **kwargs)  # the subcommand takes the lock it needs
            command = " ".join(["wb", *ctx.command_path.split()[1:]])
            with ctx.find_object(App).writing(command, creates=creates):
                return f(*args, **kwargs)

        wrapper.writes_workspace = True
        return wrapper

    return mark(f) if f is not None else mark


def console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def progress(transient: bool = False):
    """A rich progress bar on stderr (stdout stays clean for --json)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


def stage_bars(bar):
    """``progress_for(stage)``: one bar per named stage on ``bar`` (a ``progress()``), for
    library calls that report several stages; None when ``bar`` is None."""
    if bar is None:
        return None
    tasks: dict[str, int] = {}

    def progress_for(stage: str):
        def update(done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return update

    return progress_for
