"""`wb ls start|stop|status`, `wb push`, `wb pull`: the Label Studio part of the loop."""

from __future__ import annotations

import click

from ..labelstudio import postgres as postgres_defaults
from .common import domain_errors, echo_json, json_option, pass_app, progress, writes_workspace

LEVEL_CHOICES = click.Choice(["species", "category"])


def ls_url_option(f):
    return click.option(
        "--ls-url",
        envvar="WB_LS_URL",
        show_envvar=True,
        default=None,
        help="Use this Label Studio instead of the workspace's own "
        "(authenticate with WB_LS_TOKEN).",
    )(f)


@click.group("ls")
def ls_group() -> None:
    """Run the workspace's local Label Studio server.

    Example:

        wb ls start && wb ls status
    """


@ls_group.command("start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port on 127.0.0.1; a busy port is refused, never moved.",
)
@click.option(
    "--document-root",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder to serve images from (default: the common folder of the catalog's images).",
)
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for the server to answer /health.",
)
@click.option(
    "--database",
    default=None,
    metavar="URL|local|sqlite",
    help="Keep Label Studio's data in PostgreSQL: postgresql://user:password@host:port/db, "
    "or `local` for this workspace's `wb ls db start` server; `sqlite` for SQLite "
    "again. Remembered in [labelstudio] database (without the password).",
)
@click.option(
    "--new-projects",
    is_flag=True,
    default=False,
    help="With --database naming another database than the workspace's projects live "
    "in: forget those projects (the old database keeps them) so `wb push` makes new ones.",
)
@pass_app
@domain_errors
def ls_start(
    app, port: int, document_root: str | None, timeout: float, database, new_projects: bool
) -> None:
    """Start Label Studio for this workspace (data in services/labelstudio).

    Example:

        wb ls start --port 8080

        wb ls db start && wb ls start --database local
    """
    from ..labelstudio import server

    with progress(transient=True) as bar:
        task = bar.add_task("starting Label Studio (first start migrates, ~30 s)", total=timeout)
        state, started = server.start(
            app.ws,
            port=port,
            document_root=document_root,
            timeout=timeout,
            on_progress=lambda d, t: bar.update(task, completed=d),
            database=database,
            new_projects=new_projects,
        )
    creds = server.credentials(app.ws.services_dir)
    verb = "started" if started else "already running"
    click.echo(f"Label Studio {verb} at {state.url} (pid {state.pid})")
    click.echo(
        f"  log in as {creds.username}; password in {app.ws.services_dir / server.AUTH_NAME}"
    )
    click.echo(
        f"  serving images under {state.document_root or '(nothing yet: restart after ingest)'}"
    )
    click.echo(f"  database: {state.database or 'SQLite in ' + state.data_dir}")
    click.echo(f"  log: {state.log}")


@ls_group.command("stop")
@pass_app
@domain_errors
def ls_stop(app) -> None:
    """Stop the Label Studio this workspace started (by its PID).

    Example:

        wb ls stop
    """
    from ..labelstudio import server

    state = server.stop(app.ws)
    if state is None:
        click.echo("Label Studio is not running for this workspace")
    else:
        click.echo(f"stopped Label Studio (pid {state.pid}) at {state.url}")


@ls_group.command("status")
@ls_url_option
@json_option
@pass_app
@domain_errors
def ls_status(app, ls_url: str | None, as_json: bool) -> None:
    """Say whether Label Studio answers, and how many tasks the project holds.

    Example:

        wb ls status --json
    """
    from ..labelstudio.status import local_server, status

    info, problem = status(app.ws, ls_url)
    if problem:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        echo_json(info)
        return
    click.echo(f"Label Studio at {info['url']}: {'running' if info['running'] else 'not running'}")
    local = local_server(app.ws)
    if local is not None:
        click.echo(f"  started by this workspace: pid {local.pid}, log {local.log}")
    click.echo(f"  database: {info['database']}")
    if info["project_id"] is None:
        click.echo("  no project yet (run `wb push`)")
    else:
        tasks = info["tasks"] if info["tasks"] is not None else "unknown"
        click.echo(
            f"  project {info['project_id']}: {tasks} tasks "
            f"({info['url']}/projects/{info['project_id']})"
        )
    if not info["running"]:
        click.echo("  start it with `wb ls start`")


@ls_group.group("db")
def ls_db_group() -> None:
    """Run a local PostgreSQL for Label Studio (Debian's `postgresql` package).

    Example:

        wb ls db start && wb ls start --database local
    """


@ls_db_group.command("start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=postgres_defaults.DEFAULT_PORT,
    show_default=True,
    help="Port on 127.0.0.1 (TCP only); a busy port is refused.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the cluster (default: services/postgres). As root the server runs "
    "as user `postgres`, who must be able to enter every folder above it.",
)
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to wait for the server to accept connections.",
)
@pass_app
@domain_errors
def ls_db_start(app, port: int, data_dir: str | None, timeout: float) -> None:
    """Start this workspace's PostgreSQL on 127.0.0.1 (created the first time).

    Example:

        wb ls db start --port 5433
    """
    from ..labelstudio import postgres

    with progress(transient=True) as bar:
        task = bar.add_task("starting PostgreSQL", total=timeout)
        state, started = postgres.start(
            app.ws.services_dir,
            port=port,
            data_dir=data_dir,
            timeout=timeout,
            on_progress=lambda d, t: bar.update(task, completed=d),
        )
    url = postgres.local_url(app.ws.services_dir)
    verb = "started" if started else "already running"
    click.echo(f"PostgreSQL {verb} on {state.address} (pid {state.pid})")
    click.echo(f"  database: {url.redacted}")
    click.echo(f"  password in {app.ws.services_dir / postgres.AUTH_NAME}")
    click.echo(f"  data: {state.data_dir}; log: {state.log}")
    click.echo("  use it with: wb ls start --database local")


@ls_db_group.command("stop")
@pass_app
@domain_errors
def ls_db_stop(app) -> None:
    """Stop the PostgreSQL this workspace started (by its PID). Stop Label Studio first.

    Example:

        wb ls stop && wb ls db stop
    """
    from ..labelstudio import postgres, server

    if postgres.read_state(app.ws.services_dir) is not None:
        ls = server.read_state(app.ws.services_dir)
        if (
            ls is not None
            and ls.database
            and ls.database.startswith(postgres.local_url(app.ws.services_dir).redacted)
        ):
            raise click.ClickException(
                f"Label Studio (pid {ls.pid}) runs on this PostgreSQL; stop it first with "
                "`wb ls stop`"
            )
    state = postgres.stop(app.ws.services_dir)
    if state is None:
        click.echo("PostgreSQL is not running for this workspace")
    else:
        click.echo(f"stopped PostgreSQL (pid {state.pid}) on {state.address}")


@ls_db_group.command("status")
@json_option
@pass_app
@domain_errors
def ls_db_status(app, as_json: bool) -> None:
    """Say whether this workspace's PostgreSQL runs, and which database Label Studio uses.

    Example:

        wb ls db status --json
    """
    from ..labelstudio import postgres

    state = postgres.read_state(app.ws.services_dir)
    setting = app.ws.get("labelstudio", "database") or postgres.SQLITE
    info = {
        "running": state is not None,
        "pid": state.pid if state else None,
        "port": state.port if state else None,
        "url": postgres.local_url(app.ws.services_dir).redacted if state else None,
        "data_dir": state.data_dir if state else None,
        "label_studio_database": setting,
    }
    if as_json:
        echo_json(info)
        return
    if state is None:
        click.echo("PostgreSQL: not running for this workspace (start it with `wb ls db start`)")
    else:
        click.echo(f"PostgreSQL: running on {state.address} (pid {state.pid}), {info['url']}")
    click.echo(f"  Label Studio's database setting: {setting}")


@click.command("push")
@click.option(
    "--level",
    type=LEVEL_CHOICES,
    default=None,
    help="Class level of the boxes (default: the workspace's [model] level).",
)
@click.option("--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option(
    "--new-project",
    is_flag=True,
    help="Create a new Label Studio project (e.g. after the old one was deleted).",
)
@click.option(
    "--project",
    "existing_project",
    type=click.IntRange(1),
    default=None,
    metavar="ID",
    help="Push into this existing project, one someone else set up: its label config is "
    "kept, boxes go under its labels (predicted_values, [labelstudio.label_map]).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Push at most N new images.")
@click.option(
    "--overlap",
    type=click.IntRange(1, 20),
    default=None,
    metavar="N",
    help="Ask Label Studio for N annotators per task (for `wb agreement`; 1 turns it "
    "off); unset: the project's setting stays.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what push would create, and which tasks that repeat an image it would "
    "remove; change nothing.",
)
@ls_url_option
@json_option
@pass_app
@domain_errors
@writes_workspace
def push_cmd(
    app, level, batch_size, new_project, existing_project, limit, overlap, dry_run, ls_url, as_json
) -> None:
    """Send active images to Label Studio as tasks, with the promoted model's boxes.

    Re-running pushes only images without a task; it never duplicates one. Tasks that
    repeat an image (two pushes at once, an import by hand) are removed, saying so,
    when that loses no annotation; one with annotations of its own is kept and named.

    Example:

        wb push --level species
        wb push --project 12

        wb push --dry-run

        wb push --overlap 2
    """
    from ..labelstudio import connect, push

    if existing_project is not None and new_project:
        raise click.UsageError("--project and --new-project exclude each other; choose one")
    if dry_run and new_project:
        raise click.UsageError("--dry-run looks at the current project; drop --new-project")
    client, conn = connect(app.ws, ls_url)
    with progress(transient=as_json) as bar:
        task = bar.add_task("pushing tasks", total=None)

        def announce(dups) -> None:
            bar.console.print(_removing_line(dups), markup=False, highlight=False, soft_wrap=True)

        result = push(
            app.ws,
            app.catalog,
            client,
            conn,
            level=level,
            batch_size=batch_size,
            new_project=new_project,
            existing_project=existing_project,
            limit=limit,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
            dry_run=dry_run,
            on_duplicates=None if as_json else announce,
        )
    if overlap is not None and not result.dry_run:
        from ..labelstudio.agreement import request_overlap

        request_overlap(client, result.project_id, overlap)
    warning = None
    if result.model_version:
        from ..detection.findsnothing import finds_nothing_warning

        warning = finds_nothing_warning(app.ws, app.catalog, result.model_version)
    if warning:
        click.echo(warning, err=as_json)
    if as_json:
        out = {**result.__dict__, "tasks_per_second": round(result.tasks_per_second, 1)}
        if overlap is not None and not result.dry_run:
            out["overlap"] = overlap
        echo_json({**out, "duplicates": result.duplicates.to_dict()})
        return
    if result.dry_run:
        _print_plan(result)
        return
    if result.new_project:
        click.echo(f"created Label Studio project {result.project_id} (level {result.level})")
    click.echo(
        f"pushed {result.created} new tasks ({result.with_predictions} with boxes of model "
        f"{result.model_version or '-'}, {result.with_annotations} already annotated); "
        f"{result.already} images already had one"
    )
    if result.reconciled or result.forgotten:
        click.echo(
            f"reconciled: {result.reconciled} tasks recorded from Label Studio, "
            f"{result.forgotten} deleted there forgotten"
        )
    dups = result.duplicates
    if dups.removed:
        click.echo(
            f"removed {dups.removed} tasks that repeated an image already in the project "
            "(none had annotations of its own)"
        )
    _print_kept_duplicates(result)
    if overlap is not None:
        click.echo(
            f"asked Label Studio for {overlap} annotator(s) per task"
            + (" (`wb agreement` compares them after `wb pull`)" if overlap > 1 else "")
        )
    if result.refreshed:
        click.echo(f"refreshed predictions of {result.refreshed} earlier tasks")
    if result.taken_out:
        click.echo(
            f"took {result.taken_out} tasks of set-aside images (duplicate, conflict, "
            f"excluded, unreadable) out of the queue: {result.taken_out_deleted} deleted "
            f"(not annotated), {result.taken_out_kept} kept for their annotations with "
            "their predictions removed"
        )
    if result.field_first:
        click.echo(
            f"{result.field_first} field photos (marked wrong, or the model was unsure) "
            "first in the annotators' queue"
        )
    click.echo(f"open {result.project_url}")


SHOWN_DUPLICATES = 10  # repeated tasks named one per line; --json lists them all


def _ids(tasks, n: int = SHOWN_DUPLICATES) -> str:
    ids = ", ".join(str(d.task_id) for d in tasks[:n])
    return ids + (f" and {len(tasks) - n} more" if len(tasks) > n else "")


def _removing_line(dups) -> str:
    return (
        f"{dups.found} tasks repeat an image that already has a task; removing the "
        f"{len(dups.removable)} without annotations of their own (tasks {_ids(dups.removable)})"
        if dups.removable
        else f"{dups.found} tasks repeat an image that already has a task; all have "
        "annotations of their own, none is removed"
    )


def _print_kept_duplicates(result) -> None:
    """Each repeated task kept for its own annotations, and what to do about it."""
    kept = result.duplicates.annotated
    for d in kept[:SHOWN_DUPLICATES]:
        click.echo(
            f"{'would keep' if result.dry_run else 'kept'} task {d.task_id}: it repeats image "
            f"{d.image_id} (task {d.kept_task} stays) "
            f"but has {d.annotations} annotation(s) of its own; compare the two in Label "
            f"Studio ({result.project_url}/data?task={d.task_id}) and delete the wrong one there"
        )
    if len(kept) > SHOWN_DUPLICATES:
        click.echo(f"... and {len(kept) - SHOWN_DUPLICATES} more such tasks (wb push --json)")
    if kept:
        click.echo(
            "wb never deletes annotations people made: once each image has one task, "
            "`wb push` no longer reports them"
        )


def _print_plan(result) -> None:
    """`wb push --dry-run`: what push would do."""
    dups = result.duplicates
    where = "a new project" if result.new_project else f"project {result.project_id}"
    click.echo(
        f"dry run, nothing changed: push would create {result.created} new tasks in {where}; "
        f"{result.already} images already have one"
    )
    if dups.found:
        click.echo(
            f"{dups.found} tasks repeat an image that already has a task: push would remove "
            f"{len(dups.removable)} (no annotations of their own"
            + (f": tasks {_ids(dups.removable)})" if dups.removable else ")")
        )
    else:
        click.echo("no task repeats an image")
    if result.reconciled or result.forgotten:
        click.echo(
            f"it would record {result.reconciled} tasks found in Label Studio and forget "
            f"{result.forgotten} no longer there"
        )
    _print_kept_duplicates(result)


@click.command("pull")
@click.option(
    "--export",
    "export",
    type=(click.Choice(["coco"]), click.Path(dir_okay=False)),
    default=None,
    metavar="FORMAT PATH",
    help="Also write the annotated set, e.g. coco out.json.",
)
@ls_url_option
@json_option
@pass_app
@domain_errors
@writes_workspace
def pull_cmd(app, export, ls_url, as_json) -> None:
    """Bring Label Studio annotations back into the catalog as ground-truth boxes.

    The latest submitted annotation of a task wins; disagreements are reported.

    Example:

        wb pull --export coco annotated.json
    """
    from ..labelstudio import export_coco, open_project, pull
    from ..labelstudio.pull import UnmappedLabels

    project = open_project(app.ws, url=ls_url)
    unmapped = None
    with progress(transient=as_json) as bar:
        task = bar.add_task("pulling annotations", total=None)
        try:
            result = pull(
                project,
                app.catalog,
                on_progress=lambda d, t: bar.update(task, completed=d, total=t),
            )
        except UnmappedLabels as exc:  # the other tasks were pulled: say what they did
            result, unmapped = exc.result, exc
        scoring = bar.add_task("scoring agreement", total=None)
        agreement = _agreement_summary(app, lambda d, t: bar.update(scoring, completed=d, total=t))
    out = result.to_dict()
    if unmapped is not None:
        out["unmapped_labels"] = unmapped.labels
        out["tasks_not_pulled"] = unmapped.tasks
    if export:
        path, n = export_coco(project, app.catalog, export[1])
        out["export"] = {"format": export[0], "path": str(path), "images": n}
    if agreement is not None:
        out["agreement"] = agreement
    if as_json:
        echo_json(out)
        if unmapped is not None:
            raise unmapped
        return
    click.echo(
        f"{result.tasks} tasks, {result.annotated_tasks} annotated: {result.updated_images} "
        f"images updated ({result.boxes} boxes, {result.negatives} negatives), "
        f"{result.cleared} cleared, {result.skipped} skipped, {result.unchanged} unchanged"
    )
    for d in result.disagreements:
        others = ", ".join(f"{o['annotator']} ({o['n_boxes']} boxes)" for o in d.others)
        click.echo(
            f"  disagreement on image {d.image_id} (task {d.task_id}): kept "
            f"{d.chosen_annotator}'s latest annotation {d.chosen_annotation}; differs: {others}"
        )
    if agreement is not None:
        click.echo(
            f"agreement: {agreement['overlap_tasks']} tasks with several annotators, mean "
            f"{agreement['mean_agreement']:.2f}, {agreement['disagreements']} below "
            f"{agreement['threshold']:g}: see `wb agreement`"
        )
    if export:
        click.echo(f"wrote {out['export']['images']} images as COCO to {out['export']['path']}")
    if unmapped is not None:
        raise unmapped


def _agreement_summary(app, on_progress) -> dict | None:
    """`wb agreement`'s counts at its defaults, when some task has several annotators."""
    from ..labelstudio.agreement import workspace_agreement

    report = workspace_agreement(app.ws, app.catalog, on_progress=on_progress)
    if not report.overlap_tasks:
        return None
    return {
        "overlap_tasks": len(report.overlap_tasks),
        "mean_agreement": report.mean_agreement,
        "disagreements": len(report.disagreements),
        "threshold": report.threshold,
    }


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(ls_group)
    group.add_command(push_cmd)
    group.add_command(pull_cmd)
