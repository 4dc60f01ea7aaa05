"""`wb report`: what annotation cost, and what the pre-drawn boxes and the order saved."""

from __future__ import annotations

from pathlib import Path

import click

from ..labelstudio.report import DEFAULT_SECONDS_PER_BOX
from .common import CodeDefault, console, domain_errors, echo_json, json_option, pass_app


def _report_png():
    from ..labelstudio.report import REPORT_PNG

    return REPORT_PNG


def _fmt(value, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


@click.command("report")
@click.option(
    "--seconds-per-box",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=(
        "Seconds one box takes to draw from scratch, for the hours saved. Unset: measured "
        "from the timed annotations drawn without pre-drawn boxes; with none of those, "
        f"{DEFAULT_SECONDS_PER_BOX:g} s assumed (docs/report.md says why)."
    ),
)
@click.option(
    "--al-results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        "benchmarks/al_simulation.py's results.json, for the labels saved by the "
        "annotation order. Unset: reports/al-simulation/results.json in the workspace."
    ),
)
@click.option(
    "--png",
    cls=CodeDefault,
    default=_report_png,
    help="Chart file name, written under the workspace's reports/.",
)
@json_option
@pass_app
@domain_errors
def report_cmd(app, seconds_per_box, al_results, png, as_json):
    """The economics of annotation, from what `wb pull` recorded: per round (the model
    whose boxes were pre-drawn) and per annotator, the tasks, boxes kept / moved /
    relabelled / deleted / drawn new, seconds per task with and without pre-drawn boxes,
    the hours the pre-drawn boxes saved against drawing every box, and the labels the
    annotation order saved against random order. Also a chart under reports/.

    Example:

        wb report --seconds-per-box 10 --json
    """
    from ..labelstudio.report import AL_RESULTS, economics_report, hours_saved_line, plot_report

    rows = app.catalog.annotation_economics()
    al_path = al_results if al_results is not None else app.ws.reports_dir / AL_RESULTS
    report = economics_report(rows, seconds_per_box_given=seconds_per_box, al_results=al_path)
    chart = None
    if rows:
        chart = plot_report(report, app.ws.reports_dir / Path(png).name)
    report["chart"] = str(chart) if chart else None
    if as_json:
        echo_json(report)
        return
    out = console()
    if not rows:
        out.print(
            "no pulled annotations yet: annotate in Label Studio, then `wb pull`; the "
            "report counts every submitted annotation it brings back",
            soft_wrap=True,
        )
    else:
        from rich import box
        from rich.table import Table

        per_box = report["seconds_per_box"]
        out.print(
            f"{report['annotations']} annotations pulled, {report['timed']} with Label "
            "Studio's lead_time",
            soft_wrap=True,
        )
        for title, groups in (
            ("per round (model whose boxes were pre-drawn)", report["rounds"]),
            ("per annotator", report["annotators"]),
        ):
            t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
            cols = (
                "",
                "tasks",
                "pre-\ndrawn",
                "kept",
                "moved",
                "re-\nlabelled",
                "deleted",
                "new",
                "s/task\nwith",
                "s/task\nwithout",
                "hours\nsaved",
            )
            for i, col in enumerate(cols):
                t.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
            for g in [*groups, report["total"]]:
                t.add_row(
                    g["name"],
                    str(g["tasks"]),
                    str(g["predrawn"]),
                    *(str(g[k]) for k in ("kept", "moved", "relabelled", "deleted", "new")),
                    _fmt(g["seconds_per_task_with_predrawn"]),
                    _fmt(g["seconds_per_task_without_predrawn"]),
                    _fmt(g["hours_saved"], ".3f"),
                    style="bold" if g is report["total"] else None,
                )
            out.print(t)
        out.print(hours_saved_line(report["total"], per_box), soft_wrap=True)
        if per_box["source"] == "assumed":
            out.print(
                f"seconds per box {per_box['value']:g} is ASSUMED, not measured (no timed "
                "annotation drawn from scratch); give your own with --seconds-per-box",
                soft_wrap=True,
            )
    order = report["labels_saved_by_order"]
    if not order["available"]:
        out.print(f"labels saved by the annotation order: n/a ({order['how']})", soft_wrap=True)
    else:
        for s in order["strategies"]:
            out.print(
                f"labels saved by the {s['strategy']} order against random: "
                f"{_fmt(s['labels_saved'])} of {_fmt(s['random_labels_needed'])} "
                f"({_fmt(None if s['share_saved'] is None else 100 * s['share_saved'], '.0f')}%) "
                f"to reach mAP@0.5 {_fmt(s['target_mAP50'], '.3f')}, measured by "
                f"al_simulation ({order['dataset']}; {order['source']})",
                soft_wrap=True,
            )
    if chart:
        out.print(f"chart: {chart}", soft_wrap=True)


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(report_cmd)
