"""`wb dedup`: duplicate groups and cross-class conflicts, and settling them."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import click

from .common import (
    CodeDefault,
    console,
    domain_errors,
    echo_json,
    engine_options,
    json_option,
    open_engine_for,
    pass_app,
    progress,
    stage_bars,
    writes_workspace,
)
from .labelstudio import ls_url_option


def _run():
    """``dedup.run``, imported when a default is needed (it imports numpy)."""
    from ..dedup import run

    return run


def _progress_for(stack: ExitStack, enabled: bool):
    """A ``progress_for(stage)`` factory drawing one rich bar per stage on stderr."""
    return stage_bars(stack.enter_context(progress(transient=True))) if enabled else None


SHOWN_UNREADABLE = 5  # unreadable files listed after the table; the rest are counted


def _summary_table(report: dict, paths: dict) -> None:
    from rich.table import Table

    s = report["summary"]
    t = Table(title="wb dedup", show_header=True)
    t.add_column("")
    t.add_column("count", justify="right")
    for name, value in (
        ("images checked", s["images"]),
        ("hashed now", s["hashed_now"]),
        ("hashes from cache", s["hashed_cached"]),
        ("embedded now (cnn)", s["embedded_now"]),
        ("embeddings from cache (cnn)", s["embedded_cached"]),
        ("duplicate groups", s["duplicate_groups"]),
        ("copies set aside (status duplicate)", s["duplicate_images"]),
        ("conflict groups (different labels)", s["conflict_groups"]),
        ("images in conflict", s["conflict_images"]),
        ("unreadable (skipped)", s["unreadable"]),
    ):
        t.add_row(name, str(value))
    out = console()
    out.print(t)
    open_conflicts = [g for g in report["groups"] if g["kind"] == "conflict"]
    for g in open_conflicts[:10]:
        out.print(
            f"  conflict group {g['id']}: {', '.join(g['labels'])} ({len(g['images'])} images)"
        )
    if len(open_conflicts) > 10:
        out.print(
            f"  ... and {len(open_conflicts) - 10} more conflict groups (see {paths['html']})",
            soft_wrap=True,
        )
    if open_conflicts:
        out.print(
            "Settle with: wb dedup resolve GROUP --label CLASS   (or --distinct), "
            "or in Label Studio: wb dedup adjudicate"
        )
    unreadable = report["unreadable"]
    for u in unreadable[:SHOWN_UNREADABLE]:
        out.print(f"  unreadable: {u['path']}: {u['reason']}", soft_wrap=True, markup=False)
    if len(unreadable) > SHOWN_UNREADABLE:
        out.print(
            f"  ... and {len(unreadable) - SHOWN_UNREADABLE} more unreadable "
            "(see wb status --unreadable)",
            soft_wrap=True,
        )
    out.print(f"Report: {paths['html']}  (also {paths['json'].name}, {paths['csv'].name})")


@click.group("dedup", invoke_without_command=True)
@click.option(
    "--method",
    cls=CodeDefault,
    default=lambda: _run().DEFAULT_METHOD,
    help="phash|dhash|whash|ahash (perceptual hash, imagededup), cnn (EfficientNet-Lite0 "
    "embeddings: finds crops, re-framing, small rotations), or a hash and cnn together "
    "(e.g. phash,cnn): one pair list, each pair with every method that found it.",
)
@click.option(
    "--min-cosine",
    type=click.FloatRange(0, 1, min_open=True),
    cls=CodeDefault,
    default=lambda: _run().DEFAULT_MIN_COSINE,
    help="cnn: pairs at or above this cosine similarity are copies (measured; docs/dedup.md).",
)
@click.option(
    "--max-distance",
    type=click.IntRange(0, 64),
    cls=CodeDefault,
    default=lambda: _run().DEFAULT_MAX_DISTANCE,
    help="Hash distance (bits of 64) accepted without a pixel check (measured; see docs/dedup.md).",
)
@click.option(
    "--verify-distance",
    type=click.IntRange(0, 64),
    cls=CodeDefault,
    default=lambda: _run().DEFAULT_VERIFY_DISTANCE,
    help="Pairs up to this distance on both whole and centre hashes are checked "
    "on pixels (finds crops; 0 turns this check off). Colours are compared at every "
    "distance.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Hashing processes (default: all cores).",
)
@click.option(
    "--report-json",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON report to this path.",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@engine_options
@json_option
@pass_app
@click.pass_context
@domain_errors
@writes_workspace
def dedup(
    ctx: click.Context,
    app,
    method: str,
    min_cosine: float,
    max_distance: int,
    verify_distance: int,
    workers: int | None,
    report_json: Path | None,
    no_progress: bool,
    engine_name: str | None,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Find duplicate images and cross-class conflicts; write the report.

    Copies within one label become a duplicate group: the largest image is kept, the
    others get status `duplicate`. Copies under different labels are a conflict: all
    get status `conflict` (out of export and training) until settled with
    `wb dedup resolve`. Report: reports/dedup/index.html (thumbnails), report.json,
    report.csv. Hashes and embeddings are cached: a re-run computes only new images.
    With --engine ray, hashing and embedding run on a Ray cluster (docs/operations.md,
    At scale); results are stored as they arrive, so an interrupted run continues.

    Example:

        wb dedup --method phash,cnn && wb dedup resolve 3 --label pangolin_scales

        wb dedup --engine ray --ray-address 10.0.0.5:6379
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..dedup.report import build_report, write_report
    from ..dedup.run import DedupOptions, find_duplicates

    options = DedupOptions(
        method=method,
        max_distance=max_distance,
        verify_distance=verify_distance,
        min_cosine=min_cosine,
        workers=workers,
    )
    with ExitStack() as stack:
        engine = open_engine_for(app, stack, engine_name, ray_address)
        run = find_duplicates(
            app.catalog, options, _progress_for(stack, not no_progress), engine=engine
        )
        report = build_report(app.catalog, run)
        paths = write_report(report, app.ws.reports_dir, extra_json=report_json)
    if as_json:
        echo_json(report)
    else:
        _summary_table(report, paths)


@dedup.command("resolve")
@click.argument("group_id", metavar="GROUP", type=int)
@click.option(
    "--label", default=None, help="The right image-level label for every image of the group."
)
@click.option(
    "--distinct",
    is_flag=True,
    help="The images are different photos: all go back to active and are never grouped again.",
)
@click.option(
    "--by",
    "resolved_by",
    default="cli",
    show_default=True,
    help="Who settled it (recorded in the catalog).",
)
@json_option
@pass_app
@domain_errors
@writes_workspace
def resolve(
    app, group_id: int, label: str | None, distinct: bool, resolved_by: str, as_json: bool
) -> None:
    """Settle a conflict (or duplicate) group: give the right label, or --distinct.

    With --label the group becomes a duplicate group under that label (largest image
    kept, others `duplicate`). Settled groups stay settled when `wb dedup` runs again.

    Example:

        wb dedup resolve 3 --label pangolin_scales
    """
    from ..dedup.resolve import resolve_group
    from ..taxonomy import BACKGROUND

    if (label is None) == (not distinct):
        raise click.UsageError("give exactly one of --label CLASS or --distinct")
    valid = None
    if label is not None:
        valid = [*app.ws.taxonomy.all_labels, BACKGROUND]
    group = resolve_group(
        app.catalog,
        group_id,
        label=label,
        distinct=distinct,
        resolved_by=resolved_by,
        valid_labels=valid,
    )
    statuses = {m.image_id: app.catalog.get_image(m.image_id).status for m in group.members}
    if as_json:
        echo_json(
            {
                "id": str(group.id),
                "kind": group.kind,
                "resolution": group.resolution,
                "resolved_label": group.resolved_label,
                "resolved_by": group.resolved_by,
                "images": [
                    {"id": m.image_id, "keep": m.keep, "status": statuses[m.image_id]}
                    for m in group.members
                ],
            }
        )
        return
    what = f"label {group.resolved_label!r}" if group.resolution == "label" else "distinct images"
    kept = [m.image_id for m in group.members if m.keep]
    click.echo(
        f"group {group.id} settled as {what} by {group.resolved_by}; "
        + (f"kept image {kept[0]}, " if kept else "")
        + ", ".join(f"{n} {s}" for s, n in Counter(statuses.values()).items())
    )


@dedup.command("adjudicate")
@click.option(
    "--pull",
    "pull_answers",
    is_flag=True,
    help="Apply the answers experts submitted in the adjudication project.",
)
@click.option(
    "--new-project",
    is_flag=True,
    help="Create a new adjudication project (e.g. the old one was deleted) and push "
    "the open conflict groups again.",
)
@ls_url_option
@json_option
@pass_app
@domain_errors
@writes_workspace
def adjudicate(
    app, pull_answers: bool, new_project: bool, ls_url: str | None, as_json: bool
) -> None:
    """Settle conflict groups in Label Studio: push them to an adjudication project, then
    --pull.

    One task per open conflict group, its images side by side, one question: which
    label is right, or "These are different images". Re-running never makes a second
    task for a group. `--pull` settles each answered group (by
    `labelstudio:<annotator>`); settled groups stay settled when `wb dedup` runs again.

    Example:

        wb dedup && wb dedup adjudicate   # experts answer in Label Studio, then:
        wb dedup adjudicate --pull
    """
    from ..dedup.adjudicate import open_conflicts, push_conflicts
    from ..dedup.adjudicate import pull_answers as pull
    from ..labelstudio.client import connect

    if pull_answers and new_project:
        raise click.UsageError("--new-project pushes; it cannot be combined with --pull")
    if not pull_answers and not new_project and not open_conflicts(app.catalog):
        msg = "no open conflict groups to adjudicate (run `wb dedup` first to find them)"
        if as_json:
            echo_json({"project_id": None, "created": 0, "already": 0, "message": msg})
        else:
            click.echo(msg)
        return
    client, _conn = connect(app.ws, ls_url)
    if pull_answers:
        res = pull(app.ws, app.catalog, client)
        if as_json:
            echo_json(res.to_dict())
            return
        for s in res.settled:
            what = f"label {s.label!r}" if s.resolution == "label" else "distinct images"
            counts = ", ".join(f"{n} {st}" for st, n in sorted(s.statuses.items()))
            click.echo(f"group {s.group_id} settled as {what} by {s.resolved_by} ({counts})")
        for d in res.disagreements:
            answers = "; ".join(f"{who}: {c}" for who, c in d["answers"].items())
            click.echo(f"group {d['group_id']} left open: annotators disagree ({answers})")
        for bad in res.invalid:
            click.echo(f"group {bad['group_id']} left open: unknown label {bad['choice']!r}")
        if res.settled_elsewhere:
            click.echo(
                "settled meanwhile outside Label Studio (answer not applied): groups "
                + ", ".join(map(str, res.settled_elsewhere))
            )
        if res.stale_tasks:
            click.echo(
                f"{len(res.stale_tasks)} answered task(s) belong to groups that no longer "
                "exist (`wb dedup` regrouped their images); ignored"
            )
        click.echo(
            f"{len(res.settled)} group(s) settled now, {res.unchanged} unchanged, "
            f"{len(res.waiting)} waiting for an answer"
        )
        return
    res = push_conflicts(app.ws, app.catalog, client, _conn, new_project=new_project)
    if as_json:
        echo_json(
            {
                "project_id": res.project_id,
                "project_url": res.project_url,
                "new_project": res.new_project,
                "created": res.created,
                "already": res.already,
                "reconciled": res.reconciled,
                "tasks": {str(g): t for g, t in res.task_ids.items()},
            }
        )
        return
    click.echo(
        f"adjudication project {res.project_id}: {res.created} new adjudication task(s), "
        f"{res.already} already there ({res.project_url})"
    )
    click.echo("Answer them in Label Studio, then run `wb dedup adjudicate --pull`.")


RENAMED = "`wb dedup review` is now `wb dedup adjudicate`; the old name works until workbench 0.2"


def _old_name(**kwargs) -> None:
    click.echo(RENAMED, err=True)
    adjudicate.callback(**kwargs)


# The old name, hidden from help, for one release (remove in workbench 0.2).
dedup.add_command(
    click.Command(
        "review",
        params=adjudicate.params,
        callback=_old_name,
        hidden=True,
        help=f"{RENAMED}.",
        short_help="Old name.",
    )
)


def register(group: click.Group) -> None:
    """Add `wb dedup` (with `wb dedup resolve` and `wb dedup adjudicate`) to the `wb`
    group."""
    group.add_command(dedup)
