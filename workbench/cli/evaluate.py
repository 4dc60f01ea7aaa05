"""`wb evaluate`: the study's metrics for a model version, as tables, JSON and charts."""

from __future__ import annotations

import click

from ..formats import FORMATS
from .common import (
    App,
    CodeDefault,
    console,
    domain_errors,
    echo_json,
    json_option,
    pass_app,
    progress,
)


def _evaluate():
    """``detection.evaluate``, imported when its default is needed."""
    from ..detection import evaluate

    return evaluate


def _table(title: str, header: list[str], rows: list[list[str]], bold_from: int | None = -1):
    from rich import box
    from rich.table import Table

    # compact enough for 80 columns (the side-by-side table has ten)
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False
    )
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 or name == "measure" else "right")
    for i, row in enumerate(rows):
        bold = bold_from is not None and i >= len(rows) + bold_from
        table.add_row(*row, style="bold" if bold else None)
    return table


def _print_result(result) -> None:
    from ..detection import report

    out = console()
    out.print(report.headline_text(result), soft_wrap=True)
    if "unknown_classes" in result.info:
        out.print(result.info["unknown_classes"]["note"], soft_wrap=True)
    out.print(_table("per class", *report.table_rows(result)))
    out.print(
        _table(
            "confusion matrix (boxes): truth in rows, predicted in columns",
            *report.confusion_rows(result),
            bold_from=None,
        )
    )
    for kind, path in result.info.get("reports", {}).items():
        out.print(f"{kind}: {path}", soft_wrap=True)


@click.command("evaluate")
@click.option(
    "--model",
    "version",
    metavar="VERSION",
    help="Model version to evaluate (default: the promoted one).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    default="test",
    show_default=True,
    help="Catalog split to evaluate on (sticky across retrains).",
)
@click.option(
    "--compare",
    "other",
    metavar="OTHER",
    help="A second version, evaluated on the same images and shown side by side.",
)
@click.option(
    "--images",
    "images_path",
    type=click.Path(exists=True),
    help="Evaluate on an outside set that is not in the catalog (needs --format).",
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="How the --images set is laid out."
)
@click.option(
    "--score-threshold",
    type=click.FloatRange(0.0, 1.0),
    cls=CodeDefault,
    default=lambda: _evaluate().DEFAULT_SCORE_THRESHOLD,
    help="Minimum detection score for image accuracy and the confusion matrix "
    "(mAP and mAR use every detection).",
)
@json_option
@pass_app
@domain_errors
def evaluate(
    app: App,
    version: str | None,
    split: str,
    other: str | None,
    images_path: str | None,
    fmt: str | None,
    score_threshold: float,
    as_json: bool,
) -> None:
    """Measure a model: mAP@0.5, mAP@[.5:.95], mAR@100, per-class AP@0.5, AR@100 and
    image accuracy, and the confusion matrix.

    An image counts as correct when its highest-scoring detection at or above
    --score-threshold has the image's label; an image with no such detection is
    predicted `background`. Reports go to reports/eval_<version>_<split>.json and
    .png (the per-class bar chart) and _confusion.png.

    Example:

    \b
        wb evaluate --model v0003 --compare v0002
        wb evaluate --model v0003 --images ../shared/data/kangaroo --format voc --json
    """
    from ..detection import evaluate as ev
    from ..detection import report

    if (images_path is None) != (fmt is None):
        raise click.BadParameter(
            "--images and --format go together: --images PATH --format voc|coco|folders",
            param_hint="--images/--format",
        )

    def run(v: str | None, bar, label: str):
        task = bar.add_task(f"evaluate {label}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if images_path is not None:
            return ev.evaluate_outside(
                app.ws,
                v,
                images_path,
                fmt,
                catalog=app.catalog,
                score_threshold=score_threshold,
                on_progress=on_progress,
            )
        return ev.evaluate_model(
            app.ws,
            app.catalog,
            v,
            split=split,
            score_threshold=score_threshold,
            on_progress=on_progress,
        )

    with progress(transient=True) as bar:
        result = run(version, bar, version or "promoted model")
        base = run(other, bar, other) if other else None

    if base is None:
        if as_json:
            echo_json(result.metrics)
        else:
            _print_result(result)
        return

    # the compared (older) version is the base; deltas read "this model minus OTHER"
    paths = report.save_comparison(base, result, app.ws.reports_dir)
    if as_json:
        echo_json(
            {
                **report.compare_metrics(base, result),
                "reports": {k: str(p) for k, p in paths.items()},
            }
        )
        return
    out = console()
    out.print(report.headline_text(result), soft_wrap=True)
    if "unknown_classes" in result.info:
        out.print(result.info["unknown_classes"]["note"], soft_wrap=True)
    out.print(report.headline_text(base), soft_wrap=True)
    if "unknown_classes" in base.info:
        out.print(base.info["unknown_classes"]["note"], soft_wrap=True)
    out.print(
        _table(
            f"{result.model} vs {base.model} (delta = {result.model} - {base.model})",
            *report.compare_rows(base, result),
            bold_from=-4,
        )
    )
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", soft_wrap=True)


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(evaluate)
