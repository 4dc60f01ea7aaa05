"""`wb classify train | evaluate`: image-level classifiers from folder labels."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from ..classify import config as cc
from ..errors import WorkbenchError
from .common import domain_errors, echo_json, json_option, pass_app, progress, writes_workspace


def _augment(path: str | None) -> dict[str, float]:
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WorkbenchError(f"--augment {path}: cannot read it as TOML ({exc})") from None
    crop = data.get("crop", {})
    if not all(isinstance(v, int | float) and 0 <= v < 0.5 for v in crop.values()):
        raise WorkbenchError(f"--augment {path}: [crop] margins must be numbers in [0, 0.5)")
    return {k: float(v) for k, v in crop.items()}


@click.group("classify")
def classify_group():
    """Image classifiers from the catalog's image labels (no boxes needed).

    Example:

        wb classify train --positive elephant_ivory --epochs 5
    """


@classify_group.command("train")
@click.option(
    "--backbone",
    default=cc.DEFAULT_BACKBONE,
    show_default=True,
    help="efficientnet_lite0 (offline weights), alexnet, densenet121, densenet201, "
    "resnet18, resnet152, squeezenet1_0, vgg11, vgg19.",
)
@click.option("--regimen", type=click.Choice(cc.REGIMENS), default="transfer", show_default=True)
@click.option("--level", type=click.Choice(cc.LEVELS), default="category", show_default=True)
@click.option(
    "--positive",
    default=None,
    help="Binary task: CLASS[,CLASS] as one class (named CLASS+CLASS) vs 'other'.",
)
@click.option("--negatives", is_flag=True, help="Background-only images join the negative class.")
@click.option("--epochs", type=int, default=cc.DEFAULT_EPOCHS, show_default=True)
@click.option(
    "--batch-size", type=int, default=None, help=f"Unset: the study's ({cc.STUDY_BATCH})."
)
@click.option("--lr", type=float, default=cc.DEFAULT_LR, show_default=True)
@click.option(
    "--patience", type=int, default=None, help=f"Unset: the study's ({cc.STUDY_PATIENCE})."
)
@click.option("--image-size", type=int, default=cc.DEFAULT_IMAGE_SIZE, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--augment",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML with [crop] CLASS = margin.",
)
@click.option("--max-minutes", type=float, default=None, help="Stop after this long.")
@click.option(
    "--predict",
    "then_predict",
    is_flag=True,
    help="When the new classifier is promoted, classify every active image with it "
    "(`wb classify predict`).",
)
@json_option
@pass_app
@domain_errors
@writes_workspace
def train_cmd(
    app,
    backbone,
    regimen,
    level,
    positive,
    negatives,
    epochs,
    batch_size,
    lr,
    patience,
    image_size,
    seed,
    augment,
    max_minutes,
    then_predict,
    as_json,
):
    """Train and register a classifier (task "classify" in `wb models`).

    Example:

        wb classify train --positive kangaroo --epochs 5 --batch-size 8 --image-size 128
    """
    from ..classify.train import train_classifier

    config = cc.ClassifyConfig(
        backbone=backbone,
        regimen=regimen,
        level=level,
        positive=[p.strip() for p in positive.split(",")] if positive else None,
        negatives=negatives,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        image_size=image_size,
        seed=seed,
        augment=_augment(augment),
        max_minutes=max_minutes,
    )
    with progress() as bar:
        mv = train_classifier(app.ws, app.catalog, config, on_progress=_bar_updater(bar, "epochs"))
    run = None
    if then_predict and mv.promoted:
        run = _predict(app, mv.version, cc.DEFAULT_IMAGE_SET, cc.DEFAULT_PREDICT_BATCH)
    if as_json:
        echo_json({**mv.summary(), "predict": run.to_dict() if run else None})
        return
    m = mv.metrics
    click.echo(
        f"registered {mv.version} ({', '.join(mv.classes)}): val accuracy "
        f"{m['val_accuracy']:.3f} after {m['epochs_run']} epochs, {m['parameters']:,} "
        f"parameters{' (promoted)' if mv.promoted else ''}"
    )
    if run is not None:
        click.echo(run.summary())
    elif mv.promoted:
        click.echo(
            "next: `wb classify predict` stores its class probabilities per image (for "
            "`wb prioritize --signal disagreement`)"
        )
    else:
        click.echo(
            f"not promoted (classifier {app.catalog.promoted_model(task='classify').version} "
            f"is); `wb models promote {mv.version}`, then `wb classify predict`"
        )


def _bar_updater(bar, label: str):
    """An ``on_progress`` that adds its bar at the first report, so an error before any
    work shows no empty bar."""
    task: list = []

    def update(done: int, total: int) -> None:
        if not task:
            task.append(bar.add_task(label, total=total))
        bar.update(task[0], completed=done, total=total)

    return update


def _predict(app, version, images, batch_size):
    from ..classify.predict import classify_catalog

    with progress() as bar:
        return classify_catalog(
            app.ws,
            app.catalog,
            version,
            images,
            batch_size,
            on_progress=_bar_updater(bar, "images"),
        )


def _test_sets(values) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"'{v}': expected NAME=FOLDER", param_hint="--test-set")
        out[name] = path
    return out


@classify_group.command("evaluate")
@click.option("--version", default=None, help="Default: the promoted classifier.")
@click.option("--test-set", "test_sets", multiple=True, help="NAME=FOLDER (one folder per class).")
@json_option
@pass_app
@domain_errors
@writes_workspace
def evaluate_cmd(app, version, test_sets, as_json):
    """Score a classifier on the catalog's test split and on folders per class.

    Example:

        wb classify evaluate --test-set field=photos/field_test
    """
    from ..classify.evaluate import evaluate_classifier

    result = evaluate_classifier(app.ws, app.catalog, version, _test_sets(test_sets))
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['version']}  classes: {', '.join(result['classes'])}")
    click.echo(
        f"{'set':16} {'n':>5} {'acc':>6} {'prec':>6} {'recall':>6} {'f':>6} "
        f"{'params':>11} {'ms/img':>7} {'f/Mparam':>8}"
    )
    for r in result["sets"]:
        click.echo(
            f"{r['set']:16} {r['n']:>5} {r['accuracy']:>6.3f} {r['precision']:>6.3f} "
            f"{r['recall']:>6.3f} {r['f_score']:>6.3f} {r['parameters']:>11,} "
            f"{r['ms_per_image']:>7.1f} {r['f_score_per_million_params']:>8.3f}"
        )
    for r in result["sets"]:
        click.echo(f"confusion matrix {r['set']}: {r['confusion_png']}")


@classify_group.command("predict")
@click.option("--version", default=None, help="Default: the promoted classifier.")
@click.option(
    "--images",
    type=click.Choice(cc.IMAGE_SETS),
    default=cc.DEFAULT_IMAGE_SET,
    show_default=True,
    help="Active images: all, those without an image label, or those without annotations "
    "(the ones `wb prioritize` ranks).",
)
@click.option(
    "--batch-size", type=click.IntRange(1), default=cc.DEFAULT_PREDICT_BATCH, show_default=True
)
@json_option
@pass_app
@domain_errors
@writes_workspace
def predict_cmd(app, version, images, batch_size, as_json):
    """Store a classifier's class probabilities for catalog images (resumable: only
    images without an answer of that version are run).

    Example:

        wb classify predict --images unannotated
    """
    run = _predict(app, version, images, batch_size)
    if as_json:
        echo_json(run.to_dict())
        return
    click.echo(run.summary())


def register(group: click.Group) -> None:
    group.add_command(classify_group)
