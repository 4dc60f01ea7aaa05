"""`wb field`: device tokens for the field app and its accuracy report (the app itself
runs in `wb serve --field`)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import console, domain_errors, echo_json, json_option, pass_app, writes_workspace


@click.group("field")
def field_group():
    """The field app: device tokens and the report of the officers' verdicts.

    Example:

        wb field token add officer-7 && wb serve --field
    """


@field_group.group("token")
def token_group():
    """Device tokens: made once, shown once, only a hash stored.

    Example:

        wb field token add officer-7
    """


@token_group.command("add")
@click.argument("name")
@pass_app
@domain_errors
@writes_workspace
def token_add(app, name):
    """Make a token for device NAME and print it (once: only its hash is kept).

    Example:

        wb field token add officer-7
    """
    from ..field.tokens import add_device

    token = add_device(app.catalog, name)
    click.echo(token)
    click.echo(
        f"device {name}: enter this token once in the field app (/app); it is not shown "
        f"again (lost: `wb field token revoke {name}` and add it again)",
        err=True,
    )


@token_group.command("revoke")
@click.argument("name")
@pass_app
@domain_errors
@writes_workspace
def token_revoke(app, name):
    """Refuse device NAME's token from now on (its photos and verdicts stay).

    Example:

        wb field token revoke officer-7
    """
    from ..field.tokens import revoke_device

    revoke_device(app.catalog, name)
    click.echo(f"device {name}: token revoked; the field app now answers it with 401")


@token_group.command("list")
@json_option
@pass_app
@domain_errors
def token_list(app, as_json):
    """List the devices, when each token was made, last used, revoked.

    Example:

        wb field token list --json
    """
    devices = app.catalog.field_devices()
    if as_json:
        echo_json([{**d.__dict__, "active": d.active} for d in devices])
        return
    if not devices:
        click.echo("no devices yet: `wb field token add NAME` makes one")
        return
    from rich.table import Table

    t = Table(title="field devices", title_justify="left")
    for col in ("device", "token made", "last used", "revoked"):
        t.add_column(col)
    for d in devices:
        t.add_row(d.name, d.created_at, d.last_used_at or "never", d.revoked_at or "")
    console().print(t)


@field_group.command("report")
@click.option("--since", metavar="DATE", help="Photos uploaded from this day or ISO time on.")
@click.option("--until", metavar="DATE", help="Photos uploaded up to this day (included).")
@click.option(
    "--png",
    "png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the two tables as a bar chart (PNG).",
)
@json_option
@pass_app
@domain_errors
def report_cmd(app, since, until, png, as_json):
    """How often the field app's answer was right: per class of the officers' verdict
    (correct / total / accuracy, and overall), and which classes the wrong answers gave.

    Example:

        wb field report --since 2026-11-01 --png field.png
    """
    from ..field.report import accuracy_rows, field_report, plot_report, wrong_rows

    report = field_report(app.catalog, since, until)
    if png is not None:
        plot_report(report, png)
    if as_json:
        echo_json(report)
        return
    from rich import box
    from rich.table import Table

    out = console()
    period = f" from {since or 'the start'} to {until or 'now'}" if since or until else ""
    out.print(
        f"{report['photos']} field photos{period}, {report['with_feedback']} with a verdict",
        soft_wrap=True,
    )
    if not report["with_feedback"]:
        out.print("no verdicts yet: officers tap right or wrong in the field app (/app)")
    else:
        t = Table(title="answers per class (the verdict's class)", box=box.SIMPLE_HEAD)
        for i, col in enumerate(("class", "correct", "total", "accuracy")):
            t.add_column(col, justify="left" if i == 0 else "right")
        rows = accuracy_rows(report)
        for i, row in enumerate(rows):
            t.add_row(*row, style="bold" if i == len(rows) - 1 else None)
        out.print(t)
        if report["wrong_as"]:
            w = Table(title="wrong answers: the class given", box=box.SIMPLE_HEAD)
            for i, col in enumerate(("answered", "times", "share")):
                w.add_column(col, justify="left" if i == 0 else "right")
            for row in wrong_rows(report):
                w.add_row(*row)
            out.print(w)
    if png is not None:
        out.print(f"chart: {png}", soft_wrap=True)


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(field_group)
