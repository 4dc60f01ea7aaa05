"""`wb explain`: where the model looks for each box it finds (class activation maps)."""

from __future__ import annotations

from contextlib import nullcontext

import click

from .common import CodeDefault, console, domain_errors, echo_json, json_option, pass_app, progress

# cam.py imports torch; the method names are repeated here (wb --help stays free of torch)
# and a unit test keeps them equal
METHODS = ("eigencam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigengradcam")


def _default(module: str, name: str):
    def read():
        import importlib

        return getattr(importlib.import_module(f"workbench.{module}"), name)

    return read


@click.command("explain")
@click.option(
    "--images",
    "images_path",
    type=click.Path(),
    default=None,
    metavar="PATH",
    help="An image file, or a folder of images (searched recursively).",
)
@click.option(
    "--view",
    default=None,
    metavar="NAME",
    help="The images of a saved review view (`wb review` lists them; it reads the review "
    "dataset, starting FiftyOne's database for a moment: the App need not run).",
)
@click.option(
    "--model",
    "model",
    default=None,
    metavar="VERSION",
    help="Model version to explain (default: the promoted one).",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    cls=CodeDefault,
    default=_default("explain.cam", "DEFAULT_METHOD"),
    help="A CAM of the grad-cam package: eigencam is gradient-free (one pass per image, "
    "one map per image); the others take the gradient of each box's score (one map per box).",
)
@click.option(
    "--layer",
    default=None,
    metavar="NAME",
    help="Module to take the maps from, e.g. backbone.body.6 (default: the last layer of "
    "the model's backbone body, per backbone; docs/explain.md lists them).",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    cls=CodeDefault,
    default=_default("labelstudio.tasks", "DISPLAY_MIN_SCORE"),
    help="Explain boxes with at least this score (the floor of boxes annotators see).",
)
@click.option(
    "--min-inside-share",
    type=click.FloatRange(0, 1),
    cls=CodeDefault,
    default=_default("explain.evidence", "DEFAULT_MIN_INSIDE_SHARE"),
    help="Flag a box when less than this share of its heatmap's energy lies inside it.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option
@pass_app
@domain_errors
def explain_cmd(
    app,
    images_path,
    view,
    model,
    method,
    layer,
    min_score,
    min_inside_share,
    no_progress,
    as_json,
) -> None:
    """Show where the model looks for each box: one heatmap per detection.

    For each box the model finds (score >= --min-score) a picture of the photo with the
    box and the heatmap, the share of the heatmap inside the box, and a flag when the
    evidence is mostly outside it (right class for the wrong reason?). Writes the
    pictures and an HTML contact sheet under reports/explain/<version>/<method>/;
    `wb review` then shows the heatmaps on its samples.

    Example:

        wb explain --view high-confidence-false-positives

        wb explain --images photos/ivory --method gradcam --json
    """
    if (images_path is None) == (view is None):
        raise click.UsageError("say which images: --images PATH or --view NAME (one of them)")
    from ..explain.cam import grad_cam_package
    from ..explain.run import ImageToExplain, explain_images, images_at, with_catalog_ids

    grad_cam_package()  # says how to install it before any other work
    ws, catalog = app.ws, app.catalog
    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    if view is not None:
        from ..review.selection import select_review

        say(f"reading saved view '{view}' from the review dataset...")
        picked = select_review(ws, view=view)["samples"]
        items = [ImageToExplain(s["filepath"], s["image_id"]) for s in picked]
        if not items:
            say(f"saved view '{view}' holds no images: nothing to explain")
            return
    else:
        items = with_catalog_ids(catalog, images_at(images_path))
        if not items:
            say(f"no image files in {images_path}: nothing to explain")
            return

    def on_skip(path: str, reason: str) -> None:
        click.echo(f"skipped {path}: {reason}", err=True)

    show_bar = not no_progress and len(items) > 1
    with progress(transient=True) if show_bar else nullcontext() as bar:
        task = bar.add_task(f"explain ({method})", total=len(items)) if bar else None
        run = explain_images(
            ws,
            catalog,
            items,
            version=model,
            method=method,
            layer=layer,
            min_score=min_score,
            min_inside_share=min_inside_share,
            on_progress=(lambda d, t: bar.update(task, completed=d, total=t)) if bar else None,
            on_skip=on_skip,
        )
    if as_json:
        echo_json(run.to_json())
        return
    read = len(items) - len(run.unreadable)
    if not run.detections:
        click.echo(
            f"model {run.version} finds no box with score >= {min_score:g} on the {read} "
            f"images read: nothing to explain"
            + (f" ({len(run.unreadable)} unreadable, skipped)" if run.unreadable else "")
        )
        return
    _print_summary(run, read)


def _print_summary(run, read: int) -> None:
    from rich.table import Table

    click.echo(
        f"model {run.version} ({run.backbone}), {run.method} on {run.layer}: "
        f"{len(run.detections)} boxes on {read} images explained in {run.seconds:.1f} s"
        + (f"; {len(run.unreadable)} unreadable, skipped" if run.unreadable else "")
    )
    click.echo(
        f"flagged: {run.flagged} of {len(run.detections)} (less than "
        f"{run.min_inside_share:.0%} of the heatmap inside the box)"
    )
    table = Table(title="flagged detections per class")
    for col in ("class", "detections", "flagged", "share flagged"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for label, c in run.per_class.items():
        table.add_row(label, str(c["detections"]), str(c["flagged"]), f"{c['share_flagged']:.0%}")
    console().print(table)
    click.echo(f"contact sheet: {run.sheet}")


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(explain_cmd)
