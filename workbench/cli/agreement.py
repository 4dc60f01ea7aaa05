"""`wb agreement`, `wb agreement send`, `wb agreement pull`: do the annotators agree, and
an expert's word where they do not (docs/labelstudio.md, "Agreement")."""

from __future__ import annotations

import click

from .common import (
    CodeDefault,
    domain_errors,
    echo_json,
    json_option,
    pass_app,
    progress,
    writes_workspace,
)
from .labelstudio import ls_url_option

SHOWN_TASKS = 20  # disagreements listed one per line; --json lists every task


def _agreement():
    from ..labelstudio import agreement

    return agreement


def score_options(f):
    f = click.option(
        "--iou",
        "iou_threshold",
        type=click.FloatRange(0, 1, min_open=True),
        cls=CodeDefault,
        default=lambda: _agreement().DEFAULT_IOU,
        help="Boxes of one label that overlap at least this much are the same box.",
    )(f)
    return click.option(
        "--threshold",
        type=click.FloatRange(0, 1),
        cls=CodeDefault,
        default=lambda: _agreement().DEFAULT_THRESHOLD,
        help="A task whose agreement is below this is a disagreement (for expert review).",
    )(f)


def _report(app, threshold: float, iou_threshold: float):
    from ..labelstudio.agreement import workspace_agreement

    with progress(transient=True) as bar:
        task = bar.add_task("scoring agreement", total=None)
        return workspace_agreement(
            app.ws,
            app.catalog,
            threshold=threshold,
            iou_threshold=iou_threshold,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
        )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_report(report, experts: dict[int, dict]) -> None:
    from rich.table import Table

    from .common import console

    out = console()
    n_over = len(report.overlap_tasks)
    click.echo(
        f"{len(report.tasks)} annotated tasks, {n_over} with several annotators: mean "
        f"agreement {_fmt(report.mean_agreement)}; {len(report.disagreements)} below "
        f"{report.threshold:g} (IoU {report.iou_threshold:g})"
    )
    if not n_over:
        click.echo(
            "agreement is n/a: no task has two annotators' submitted annotations. Ask for "
            "overlap with `wb push --overlap 2`, then `wb pull` when they have annotated"
        )
    table = Table(title="Annotators")
    for col in ("annotator", "tasks", "shared", "agreement", "pre-drawn kept", "s/task"):
        table.add_column(col, justify="left" if col == "annotator" else "right")
    for a in report.annotators:
        kept = (
            f"{a.predrawn_kept}/{a.predrawn_boxes} ({_fmt(a.acceptance)})"
            if a.acceptance is not None
            else "n/a"
        )
        table.add_row(
            a.annotator,
            str(a.tasks),
            str(a.shared_tasks),
            _fmt(a.agreement),
            kept,
            _fmt(a.seconds_per_task, 1),
        )
    if report.annotators:
        out.print(table)
    disagreements = report.disagreements
    if disagreements:
        table = Table(title=f"Disagreements (agreement below {report.threshold:g})")
        for col in ("task", "image", "agreement", "boxes per annotator", "expert review"):
            table.add_column(col, justify="right" if col in ("task", "image") else "left")
        for t in disagreements[:SHOWN_TASKS]:
            sent = experts.get(t.image_id)
            expert = (
                "not sent"
                if sent is None
                else (
                    f"answered by {sent['reviewed_by']}"
                    if sent["reviewed_by"]
                    else f"waiting (task {sent['task_id']})"
                )
            )
            boxes = ", ".join(f"{n}: {k}" for n, k in t.boxes.items())
            table.add_row(str(t.task_id), str(t.image_id), _fmt(t.score), boxes, expert)
        out.print(table)
        if len(disagreements) > SHOWN_TASKS:
            click.echo(f"... and {len(disagreements) - SHOWN_TASKS} more (--json lists all)")
        if any(t.image_id not in experts for t in disagreements):
            click.echo("Send them to an expert: wb agreement send")


@click.group("agreement", invoke_without_command=True)
@score_options
@json_option
@pass_app
@click.pass_context
@domain_errors
def agreement(ctx: click.Context, app, threshold: float, iou_threshold: float, as_json: bool):
    """How far annotators agree on tasks several of them annotated (from the last
    `wb pull`).

    Per task: boxes matched by IoU and class, 2 x matched / all boxes, averaged over the
    pairs of annotators; a task one person annotated is "n/a". Per annotator: agreement
    with the others on shared tasks, pre-drawn model boxes kept, seconds per task
    (Label Studio's lead_time). Tasks below --threshold go to an expert with
    `wb agreement send`.

    Example:

        wb push --overlap 2   # annotators work in Label Studio, then:
        wb pull && wb agreement --threshold 0.8

        wb agreement --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..labelstudio.expert_review import expert_status

    report = _report(app, threshold, iou_threshold)
    experts = expert_status(app.ws, app.catalog)
    if as_json:
        out = report.to_dict()
        out["expert_review"] = {str(k): v for k, v in experts.items()}
        echo_json(out)
        return
    _print_report(report, experts)


@agreement.command("send")
@score_options
@click.option(
    "--new-project",
    is_flag=True,
    help="Create a new expert review project (e.g. the old one was deleted).",
)
@ls_url_option
@json_option
@pass_app
@domain_errors
@writes_workspace
def send_cmd(app, threshold, iou_threshold, new_project, ls_url, as_json) -> None:
    """Send the disagreements to an expert review project in Label Studio.

    One task per image, each annotator's boxes pre-drawn as a prediction named after
    them; the expert submits the right boxes. Re-running never sends an image twice.
    Bring the answers back with `wb agreement pull`.

    Example:

        wb agreement send --threshold 0.8   # an expert answers in Label Studio, then:
        wb agreement pull
    """
    from ..labelstudio import open_project
    from ..labelstudio.expert_review import send_disagreements

    report = _report(app, threshold, iou_threshold)
    if not report.disagreements and not new_project:
        msg = (
            f"no disagreements to send: no task's agreement is below {threshold:g} "
            f"({len(report.overlap_tasks)} tasks with several annotators; see `wb agreement`)"
        )
        if as_json:
            echo_json({"project_id": None, "sent": 0, "already": 0, "message": msg})
        else:
            click.echo(msg)
        return
    project = open_project(app.ws, url=ls_url)
    with progress(transient=True) as bar:
        task = bar.add_task("sending to expert review", total=None)
        result = send_disagreements(
            app.ws,
            app.catalog,
            project,
            report,
            new_project=new_project,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
        )
    if as_json:
        echo_json(result.to_dict())
        return
    if result.new_project:
        click.echo(f"created expert review project {result.project_id}")
    click.echo(
        f"sent {result.sent} disagreements (agreement below {threshold:g}) to expert "
        f"review; {result.already} were sent before"
        + (f"; {result.reconciled} found there and recorded" if result.reconciled else "")
    )
    click.echo(f"open {result.project_url}")


@agreement.command("pull")
@ls_url_option
@json_option
@pass_app
@domain_errors
@writes_workspace
def pull_cmd(app, ls_url, as_json) -> None:
    """Bring the experts' answers back: each becomes the image's ground truth.

    `wb pull`'s rules: the latest submitted answer wins, a re-run changes nothing.

    Example:

        wb agreement pull --json
    """
    from ..labelstudio import open_project
    from ..labelstudio.expert_review import pull_expert_answers, require_expert_review

    require_expert_review(app.ws)  # before connecting: the message that helps
    project = open_project(app.ws, url=ls_url)
    with progress(transient=True) as bar:
        task = bar.add_task("pulling expert answers", total=None)
        result = pull_expert_answers(
            app.ws,
            app.catalog,
            project,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
        )
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(
        f"{result.tasks} expert review tasks, {result.annotated_tasks} answered: "
        f"{result.updated_images} images' ground truth written ({result.boxes} boxes), "
        f"{result.unchanged} unchanged, {result.skipped} skipped"
    )


def register(group: click.Group) -> None:
    """Add `wb agreement` (with `send` and `pull`) to the `wb` group."""
    group.add_command(agreement)
