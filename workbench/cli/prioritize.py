"""`wb prioritize`: rank unannotated images by the model's uncertainty and put the most
uncertain first in Label Studio."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click

from ..active.disagreement import DEFAULT_SIGNAL, SIGNALS
from ..active.uncertainty import AGGREGATES, SCORES, UncertaintyConfig
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
    writes_workspace,
)
from .labelstudio import ls_url_option

# active.selection imports numpy: its names are repeated here, and a unit test keeps
# them equal (tests/unit/test_cli_defaults.py)
STRATEGIES = ("uncertainty", "diverse", "random")


def _selection_default(name: str):
    def read():
        from dataclasses import fields

        from ..active.selection import SelectionConfig

        return next(f.default for f in fields(SelectionConfig) if f.name == name)

    return read


@click.command("prioritize")
@click.option(
    "--model",
    "model",
    default=None,
    metavar="VERSION",
    help="Model version to ask (default: the promoted one).",
)
@click.option(
    "--score",
    type=click.Choice(SCORES),
    default=UncertaintyConfig.score,
    show_default=True,
    help="Per-box uncertainty: 1 - top p, 1 - (top1 - top2), or normalised entropy.",
)
@click.option(
    "--aggregate",
    type=click.Choice(AGGREGATES),
    default=UncertaintyConfig.aggregate,
    show_default=True,
    help="Boxes -> image: max, mean, or sum (probabilistic OR over boxes).",
)
@click.option(
    "--signal",
    type=click.Choice(SIGNALS),
    default=DEFAULT_SIGNAL,
    show_default=True,
    help="What the ranking rests on: the detector's uncertainty, where the image "
    "classifier and the detector disagree (needs `wb classify predict`), or both.",
)
@click.option(
    "--classifier",
    default=None,
    metavar="VERSION",
    help="Classifier of the disagreement signal (default: the promoted classifier).",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    cls=CodeDefault,
    default=_selection_default("strategy"),
    help="uncertainty: most uncertain first; diverse: uncertain AND unlike each other "
    "(k-center greedy on backbone features); random: a baseline.",
)
@click.option(
    "--batch",
    type=click.IntRange(1),
    cls=CodeDefault,
    default=_selection_default("batch"),
    help="Images to select for the next annotation round.",
)
@click.option(
    "--seed",
    type=int,
    cls=CodeDefault,
    default=_selection_default("seed"),
    help="Seed for --strategy random.",
)
@click.option(
    "--show",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Print the first N in annotation order with their components, and write an "
    "HTML page with thumbnails and the model's boxes under reports/.",
)
@click.option(
    "--no-labelstudio",
    is_flag=True,
    help="Store the priorities only; leave the Label Studio project as it is.",
)
@ls_url_option
@engine_options
@json_option
@pass_app
@domain_errors
@writes_workspace
def prioritize_cmd(
    app,
    model,
    score,
    aggregate,
    signal,
    classifier,
    strategy,
    batch,
    seed,
    show,
    no_labelstudio,
    ls_url,
    engine_name,
    ray_address,
    as_json,
) -> None:
    """Rank unannotated images by how unsure the model is; annotators get them in that order.

    Uses the promoted model (or --model), predicting the images it has not seen yet,
    stores the ranking in the catalog per model version, and sets the workspace's Label
    Studio project to uncertainty sampling so its "Label All Tasks" queue starts with the
    most uncertain image.

    Example:

        wb prioritize --strategy diverse --batch 20 --show 20

        wb prioritize --signal uncertainty+disagreement --show 20
        wb prioritize --engine ray --ray-address 10.0.0.5:6379   # predict on Ray
    """
    from ..active.prioritize import PrioritizeConfig, prioritize
    from ..active.selection import SelectionConfig
    from ..active.uncertainty import UncertaintyConfig

    config = PrioritizeConfig(
        model=model,
        uncertainty=UncertaintyConfig(score, aggregate),
        selection=SelectionConfig(strategy, batch, seed=seed),
        signal=signal,
        classifier=classifier,
    )
    ws, catalog = app.ws, app.catalog
    with ExitStack() as stack:
        engine = open_engine_for(app, stack, engine_name, ray_address)
        bar = stack.enter_context(progress(transient=True))
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = prioritize(ws, catalog, config, on_progress=on_progress, engine=engine)
    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    say(result.summary())
    from ..detection.findsnothing import finds_nothing_warning

    warning = finds_nothing_warning(ws, catalog, result.version)
    if warning:
        say(warning)
    if len(result.batch) < min(batch, len(result.ranked)):
        say(
            f"note: only {len(result.batch)} images differ enough from each other for a diverse "
            "batch (the rest are copies of picked ones)"
        )

    if no_labelstudio:
        say("Label Studio: left as it is (--no-labelstudio)")
    elif ws.project_id() is None:
        say("Label Studio: no project yet; `wb push` sends the tasks with these priorities")
    else:
        from ..errors import ServiceError
        from ..labelstudio import open_project
        from ..labelstudio.ordering import apply_order

        try:
            order = apply_order(
                open_project(ws, url=ls_url),
                catalog,
                result.version,
                batch=None if strategy == "uncertainty" else [p.image_id for p in result.batch],
            )
        except ServiceError as exc:
            raise click.ClickException(
                f"{exc}\nThe priorities are stored in the catalog; run `wb prioritize` again "
                "once Label Studio answers, or pass --no-labelstudio."
            ) from None
        say(order.summary())

    if show:
        _print_table(result, show, as_json)
        from ..active.report import write_report

        page = write_report(result, ws.reports_dir, show)
        say(f"page with thumbnails: {page}")
    if as_json:
        echo_json(result.to_json())


def _print_table(result, show: int, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..active.report import annotation_order

    table = Table(
        title=f"first {show} in annotation order (model {result.version}); "
        "* = in the selected batch"
    )
    for col in ("#", "id", "unc", "base", "box"):
        table.add_column(col, no_wrap=True, justify="right")
    table.add_column("label", overflow="fold")
    for col in ("disagr", "missed", "unstab"):
        table.add_column(col, no_wrap=True, justify="right")
    versus = result.classifier is not None
    if versus:  # classifier vs detector: C classifier only, D detector only
        table.add_column("cls/det", no_wrap=True, justify="right")
    table.add_column("file", overflow="fold")
    for n, p in enumerate(annotation_order(result)[:show], start=1):
        c = p.components
        extra = []
        if versus:
            d, kind = c.get("disagreement"), c.get("disagreement_kind")
            extra = ["-" if d is None else f"{d:.2f}{' ' + kind[0].upper() if kind else ''}"]
        table.add_row(
            f"{n}{'*' if p.selected else ''}",
            str(p.image_id),
            f"{p.uncertainty:.3f}",
            f"{c.get('base', 0):.3f}",
            str(c.get("boxes", 0)),
            str(p.label or "-"),
            f"{c.get('label_disagreement', 0):.0f}",
            f"{c.get('missed_product', 0):.0f}",
            f"{c.get('class_instability', 0):.2f}",
            *extra,
            Path(p.path).name,
        )
    (Console(stderr=True, highlight=False) if to_stderr else console()).print(table)


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(prioritize_cmd)
