"""`wb review`: the model's errors against ground-truth boxes, in the FiftyOne App.

Nothing here imports fiftyone: the work runs in ``workbench.review``'s worker process.
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack

import click

from ..review.label_errors import (
    BAND_LOW,
    MATCH_IOU,
    MIN_CONFIDENCE,
    MIN_SCORE,
)
from ..review.label_errors import (
    KINDS as LABEL_ERROR_KINDS,
)
from ..review.label_errors import TOP as ERRORS_TOP
from ..review.views import LIKELY_LABEL_ERRORS
from .common import (
    console,
    domain_errors,
    echo_json,
    json_option,
    pass_app,
    progress,
    stage_bars,
    writes_workspace,
)
from .labelstudio import ls_url_option


def label_error_options(f):
    """The label-error thresholds, one definition for `wb review` (its likely-label-errors
    view) and `wb review errors`."""
    for option in reversed(_THRESHOLD_OPTIONS):
        f = option(f)
    return f


_THRESHOLD_OPTIONS = [
    click.option(
        "--min-score",
        type=click.FloatRange(0, 1),
        default=MIN_SCORE,
        show_default=True,
        help="Suspects scoring below this are not listed.",
    ),
    click.option(
        "--min-confidence",
        type=click.FloatRange(0, 1),
        default=MIN_CONFIDENCE,
        show_default=True,
        help="A prediction this confident over no box makes a 'missing' suspect.",
    ),
    click.option(
        "--match-iou",
        type=click.FloatRange(0, 1, min_open=True),
        default=MATCH_IOU,
        show_default=True,
        help="IoU at which a prediction confirms a box (below it, down to --band-low, the "
        "box is a 'localisation' suspect).",
    ),
    click.option(
        "--band-low",
        type=click.FloatRange(0, 1, min_open=True),
        default=BAND_LOW,
        show_default=True,
        help="IoU below which a prediction and a box have nothing to do with each other.",
    ),
]


def stage_line(stage: str, info: dict) -> str | None:
    """What `wb review` says as a build step starts (why it takes the time it does)."""
    if stage == "sync":
        boxes = info["gt_boxes"] + info["predicted_boxes"]
        return (
            f"review: writing {info['images']:,} images with {boxes:,} boxes "
            f"({info['gt_boxes']:,} ground truth, {info['predicted_boxes']:,} predicted by "
            f"{info['versions']} model versions) into FiftyOne; it stores every box as a "
            "document, so this takes minutes for many boxes (a re-run rewrites only changed "
            "images)"
        )
    if stage == "evaluate":
        n = len(info["versions"])
        return f"review: evaluating {n} model versions on {info['annotated']:,} annotated images"
    if stage == "views":
        return "review: saving the views"
    return None


def _progress(stack: ExitStack, bar_on: bool, lines_on: bool):
    """(on_progress, on_stage) for a review build: a bar (``bar_on``) whose label carries
    the counts, and one line on stderr per step (``lines_on``, also off a terminal)."""
    bar = stack.enter_context(progress(transient=True)) if bar_on else None
    task = bar.add_task("review dataset", total=None) if bar is not None else None

    def on_stage(stage: str, info: dict) -> None:
        line = stage_line(stage, info)
        if line and lines_on:
            if bar is not None:
                bar.console.print(line, markup=False, highlight=False)
            else:
                click.echo(line, err=True)
        if bar is not None and stage == "sync":
            boxes = info["gt_boxes"] + info["predicted_boxes"]
            label = f"review dataset: {info['images']:,} images, {boxes:,} boxes"
            bar.update(task, description=label)

    def on_progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return (on_progress if bar is not None else None), on_stage


def _print_summary(summary: dict, view_urls: dict[str, str] | None) -> None:
    sync = summary["sync"]
    click.echo(
        f"Review dataset {summary['dataset']}: {summary['samples']} samples "
        f"(added {sync['added']}, updated {sync['updated']}, removed {sync['removed']}, "
        f"unchanged {sync['unchanged']}) in {summary['seconds']:.1f} s"
    )
    if summary["model"] is None:
        click.echo(
            "No model predictions in the catalog yet: only ground truth, duplicates and "
            "priorities to review (run `wb retrain` first for the error views)."
        )
    else:
        against = (
            f", compared with {summary['previous_model']}" if summary["previous_model"] else ""
        )
        click.echo(
            f"Views are about model {summary['model']}{against} "
            f"(classes at level {summary['level']})."
        )
    for version, m in summary["evaluations"].items():
        mAP = "n/a" if m["mAP50"] is None else f"{m['mAP50']:.3f}"
        click.echo(
            f"  {version}: mAP@0.5 {mAP}  TP {m['tp']}  FP {m['fp']}  FN {m['fn']}  "
            f"on {m['images']} annotated images"
        )
    errors = summary.get("label_errors")
    if errors is not None:
        click.echo(
            f"Likely label errors: {errors['suspects']} suspect boxes in {errors['images']} "
            "images (view likely-label-errors; `wb review errors` lists them)"
        )
    click.echo("Saved views (samples):")
    for name in summary["views"]:
        url = f"  {view_urls[name]}" if view_urls and name in view_urls else ""
        click.echo(f"  {name} ({summary['view_samples'].get(name, 0)}){url}")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


@click.group("review", invoke_without_command=True)
@click.option(
    "--model",
    "model",
    default=None,
    metavar="VERSION",
    help="Model version the error views are about (default: the promoted one).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5151,
    show_default=True,
    help="Port of the FiftyOne App (bound to 127.0.0.1).",
)
@click.option("--no-launch", is_flag=True, help="Only build/update the dataset; no App.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@label_error_options
@json_option
@pass_app
@click.pass_context
@domain_errors
def review(
    ctx: click.Context,
    app,
    model: str | None,
    port: int,
    no_launch: bool,
    no_progress: bool,
    min_score: float,
    min_confidence: float,
    match_iou: float,
    band_low: float,
    as_json: bool,
) -> None:
    """Build/update the FiftyOne review dataset and open the App on 127.0.0.1.

    Syncs the catalog's images, ground-truth boxes and each model version's
    predictions into a persistent FiftyOne dataset, evaluates every version
    (COCO, IoU 0.5, class-wise and class-agnostic), saves the reviewer's views,
    then serves the App (no browser is opened) until Ctrl-C.

    Example:

        wb review --model v001 --port 5151        (then open the printed URL)

        wb review --no-launch --json

        wb review --no-launch --min-score 0.5 --match-iou 0.6

    The threshold options are `wb review errors`' and shape the likely-label-errors
    view (and what `wb review send likely-label-errors` marks).
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..review import ReviewApp, build_review
    from ..review.label_errors import Thresholds

    thresholds = Thresholds(
        match_iou=match_iou, band_low=band_low, min_confidence=min_confidence, min_score=min_score
    )
    from ..review.predictions import ensure_predictions

    ws = app.ws
    with ExitStack() as stack:
        # the compared versions need boxes on the annotated images, not only on the rest
        bar = (
            stack.enter_context(progress(transient=True)) if not (no_progress or as_json) else None
        )
        ensure_predictions(ws, app.catalog, model, progress_for=stage_bars(bar))
    if no_launch:
        with ExitStack() as stack:
            on_progress, on_stage = _progress(stack, not (no_progress or as_json), not as_json)
            summary = build_review(
                ws, model=model, on_progress=on_progress, on_stage=on_stage, thresholds=thresholds
            )
        echo_json(summary) if as_json else _print_summary(summary, None)
        return
    review_app = ReviewApp(ws, model=model, port=port, thresholds=thresholds)
    try:
        with ExitStack() as stack:
            on_progress, on_stage = _progress(stack, not (no_progress or as_json), not as_json)
            summary = review_app.start(on_progress=on_progress, on_stage=on_stage)
        if as_json:
            echo_json({**summary, "url": review_app.url, "view_urls": review_app.view_urls})
        else:
            _print_summary(summary, review_app.view_urls)
            click.echo(f"FiftyOne App: {review_app.url}   (Ctrl-C to stop)")
        # SIGTERM (a service manager, `kill`) stops as cleanly as Ctrl-C
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            code = review_app.wait()
        except KeyboardInterrupt:
            click.echo("Stopping the App and its database...", err=True)
            return
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        review_app.stop()
    raise click.ClickException(
        f"the FiftyOne App stopped unexpectedly (exit code {code}); see "
        f"{ws.services_dir / 'fiftyone' / 'log' / 'worker.log'}"
    )


@review.command("send")
@click.argument("view", required=False)
@click.option(
    "--tag",
    default=None,
    metavar="TAG",
    help="Only the samples a reviewer tagged TAG in the App (the sample or one of its "
    "boxes); without VIEW, from the whole dataset.",
)
@ls_url_option
@json_option
@pass_app
@domain_errors
@writes_workspace
def send(app, view: str | None, tag: str | None, ls_url: str | None, as_json: bool) -> None:
    """Send a saved view's images (or the tagged ones) to the FRONT of Label Studio's queue.

    VIEW is a saved view of the review dataset, as `wb review` lists them. Images
    without a task are pushed first (never twice); then the sent images, in the
    view's order, are what Label Studio's queue hands out next (uncertainty
    sampling on the project's model version, the sent tasks scored lowest).

    Example:

        wb review send missed-ground-truth

        wb review send worst-images --tag fix
    """
    if view is None and tag is None:
        raise click.UsageError("give a saved VIEW (e.g. missed-ground-truth), or --tag TAG")
    from ..labelstudio import connect
    from ..labelstudio.front import send_to_front
    from ..review.selection import select_review

    client, conn = connect(app.ws, ls_url)  # fail fast, before starting FiftyOne
    selected = select_review(app.ws, view=view, tag=tag)
    what = " ".join(
        filter(
            None,
            [
                f"view '{view}'" if view else "the review dataset",
                f"tagged '{tag}'" if tag else None,
            ],
        )
    )
    if not selected["samples"]:
        hint = (
            f" Tags in the dataset: {', '.join(selected['tags']) or 'none'}."
            if tag
            else " (The views follow the model `wb review` last built them for: --model.)"
        )
        raise click.ClickException(f"nothing to send: {what} holds no images.{hint}")
    ids = [s["image_id"] for s in selected["samples"]]
    notes, markers = (
        _label_error_notes(app, ids, selected.get("model"), selected.get("label_error_thresholds"))
        if view == LIKELY_LABEL_ERRORS
        else (None, None)
    )
    with progress(transient=True) as bar:
        task = bar.add_task("sending to Label Studio", total=len(ids))
        result = send_to_front(
            app.ws,
            app.catalog,
            client,
            conn,
            ids,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
            notes=notes,
            markers=markers,
        )
    paths = {s["image_id"]: s["filepath"] for s in selected["samples"]}
    if as_json:
        out = result.as_dict()
        for s in out["sent"]:
            s["filepath"] = paths.get(s["image_id"])
        echo_json({"dataset": selected["dataset"], "view": view, "tag": tag, **out})
        return
    click.echo(
        f"Sent {len(result.sent)} images of {what} to the front of Label Studio project "
        f"{result.project_id} (model version {result.model_version}, uncertainty sampling): "
        f"{result.pushed} pushed as new tasks, {result.moved} already had a task"
    )
    first = result.sent[0]
    click.echo(
        f"  first in the queue: image {first.image_id} ({paths.get(first.image_id)}), "
        f"task {first.task_id}"
    )
    if result.noted:
        click.echo(f"  {result.noted} tasks show their suspect boxes in the header above the image")
    if result.marked:
        click.echo(
            f"  {result.marked_boxes} suspect boxes marked on {result.marked} tasks (the "
            "pre-drawn boxes; each says why in the region's meta text)"
        )
    for image_id, reason in result.left_out.items():
        click.echo(f"  left out image {image_id} ({paths.get(image_id)}): {reason}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"open {result.project_url}")


@review.command("errors")
@click.option(
    "--version",
    "version",
    default=None,
    metavar="VERSION",
    help="Detector whose predictions the labels are checked against (default: the promoted one).",
)
@click.option(
    "--kind",
    type=click.Choice(LABEL_ERROR_KINDS),
    default=None,
    help="Only this kind of suspect (default: every kind).",
)
@click.option(
    "--top",
    type=click.IntRange(0),
    default=ERRORS_TOP,
    show_default=True,
    help="Rows shown, most likely first (0: all).",
)
@label_error_options
@json_option
@pass_app
@domain_errors
def errors(
    app,
    version: str | None,
    kind: str | None,
    top: int,
    min_score: float,
    min_confidence: float,
    match_iou: float,
    band_low: float,
    as_json: bool,
) -> None:
    """The most likely label errors: ground-truth boxes the detector disagrees with.

    Compares the catalog's ground truth of the annotated images with the stored
    predictions of the promoted detector (or --version): a confident box over no
    label (missing), a label no prediction supports (extra), a label whose place the
    model gives another class (wrong_class), a label the model's box overlaps only
    partly (localisation). Each suspect has a score in [0, 1]; the table lists the
    best first. `wb review` shows them as the saved view likely-label-errors, and
    `wb review send likely-label-errors` puts those images first in Label Studio.

    Example:

        wb review errors --top 20

        wb review errors --kind missing --min-confidence 0.7 --json
    """
    from ..review.label_errors import Thresholds, catalog_label_errors

    thresholds = Thresholds(
        match_iou=match_iou, band_low=band_low, min_confidence=min_confidence, min_score=min_score
    )
    report = catalog_label_errors(
        app.catalog, app.ws.taxonomy, version, thresholds, kind, level=app.ws.model_level()
    )
    shown = report.suspects[:top] if top else report.suspects
    paths = {im.id: im.path for im in app.catalog.images(ids={s.image_id for s in shown})}
    if as_json:
        out = report.as_dict()
        out["thresholds"] = thresholds.__dict__ | {"kind": kind}
        out["suspects"] = [s.as_dict() | {"path": paths.get(s.image_id)} for s in shown]
        out["suspects_total"] = len(report.suspects)
        echo_json(out)
        return
    what = f"'{kind}' suspects" if kind else "suspects"
    click.echo(
        f"Label errors by model {report.model_version}: {len(report.suspects)} {what} scoring "
        f">= {min_score} in {len(report.image_scores)} of {report.images} annotated images "
        "with predictions"
    )
    if not shown:
        click.echo("  none: lower --min-score (or --min-confidence) to see weaker ones")
        return
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD)
    for col in ("score", "kind", "image", "label", "predicted", "box x1,y1,x2,y2"):
        t.add_column(col, justify="right" if col in ("score", "image") else "left", no_wrap=True)
    t.add_column("path", overflow="fold")
    root = _common_folder([paths[s.image_id] for s in shown if s.image_id in paths])
    for s in shown:
        t.add_row(
            f"{s.score:.3f}",
            s.kind,
            str(s.image_id),
            s.label,
            s.predicted or "",
            ",".join(f"{v:.0f}" for v in s.box),
            _relative(paths.get(s.image_id, ""), root),
        )
    if root:
        click.echo(f"  paths under {root}/")
    out = console()
    if not out.is_terminal:  # piped or in a file: rows whole, not folded at 80 columns
        out.width = 200
    out.print(t)
    if top and len(report.suspects) > top:
        click.echo(f"  ... {len(report.suspects) - top} more (--top 0 shows all)")


def _common_folder(paths: list[str]) -> str | None:
    """The folder all ``paths`` lie in (None: none, or only the file system root)."""
    if not paths:
        return None
    folder = os.path.dirname(os.path.commonprefix(paths) + "x")
    return (
        folder
        if folder not in ("", "/") and all(p.startswith(folder + "/") for p in paths)
        else None
    )


def _relative(path: str, root: str | None) -> str:
    return path[len(root) + 1 :] if root and path.startswith(root + "/") else path


def _label_error_notes(app, image_ids: list[int], model: str | None, thresholds: dict | None):
    """(image id -> the suspects' header line, image id -> the suspect boxes to mark) at
    the thresholds the view was built with (``thresholds``, else `wb review errors`'
    defaults; ``model``: the one the views are about, else the promoted one)."""
    from ..labelstudio.tasks import SUSPECT_TEXT_PREFIX, SuspectMarker
    from ..review.label_errors import (
        Thresholds,
        catalog_label_errors,
        suspect_line,
        suspect_note,
    )

    t = Thresholds(**thresholds) if thresholds else None
    report = catalog_label_errors(
        app.catalog, app.ws.taxonomy, model, t, level=app.ws.model_level()
    )
    wanted = set(image_ids)
    by_image: dict[int, list] = {}
    for s in report.suspects:
        if s.image_id in wanted:
            by_image.setdefault(s.image_id, []).append(s)
    notes = {i: suspect_note(report.model_version, ss) for i, ss in by_image.items()}
    markers = {
        i: [
            SuspectMarker(
                s.kind,
                s.score,
                s.label,
                s.box,
                f"{SUSPECT_TEXT_PREFIX}{suspect_line(s)} (model {report.model_version})",
            )
            for s in ss
        ]
        for i, ss in by_image.items()
    }
    return notes, markers


def register(group: click.Group) -> None:
    """Add `wb review` to the `wb` group."""
    group.add_command(review)
