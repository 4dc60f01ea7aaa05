"""`wb retrain` and `wb models`: train, register, promote and list detector versions."""

from __future__ import annotations

import sys
from contextlib import ExitStack

import click

from ..detection.names import (
    DEFAULT_BACKBONE,
    DEFAULT_OPSET,
    EXPORT_FORMATS,
    LOSSES,
    OPSETS,
    REGIMENS,
)
from ..taxonomy import LEVELS
from ..workspace import DEFAULT_LEVEL
from .common import (
    CodeDefault,
    domain_errors,
    echo_json,
    engine_options,
    json_option,
    open_engine_for,
    pass_app,
    writes_workspace,
)

SKIPPABLE = ("pull", "train", "register", "evaluate", "promote", "predict", "refresh")


def _train_option(flag: str, **kwargs):
    """An option for the ``TrainConfig`` field of the same name, defaulting to (and
    showing) that field's default."""
    name = flag.lstrip("-").replace("-", "_")
    return click.option(flag, name, cls=CodeDefault, default=lambda: train_default(name), **kwargs)


def train_default(name: str):
    """The default of ``TrainConfig.<name>`` (imports torch: call it only when needed)."""
    from dataclasses import fields

    from ..detection.train import TrainConfig

    return next(f.default for f in fields(TrainConfig) if f.name == name)


def _skip_options(f):
    for step in reversed(SKIPPABLE):
        f = click.option(
            f"--skip-{step}", f"skip_{step}", is_flag=True, help=f"Skip the {step} step."
        )(f)
    return f


def _labelstudio_hooks(app):
    """(pull, refresh) callables ``(ws, catalog) -> summary`` for the loop's Label Studio
    steps; None when the workspace has no Label Studio project."""
    from ..loop import labelstudio_hooks

    return labelstudio_hooks(app.ws)


class _Lines:
    """Stands in for the progress bar off a terminal (piped to a file, CI): no bar, each
    line printed whole (no wrapping) and flushed at once."""

    def __init__(self, err: bool):
        self.err = err
        self.console = self

    def print(self, line: str) -> None:
        click.echo(line, err=self.err)

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


class _ProgressPrinter:
    """Turns training events into a rich progress bar (loss, lr, ETA) on stderr; off a
    terminal (``_Lines``), into plain lines: the plan, when training starts, one line
    per epoch and one per stage."""

    def __init__(self, bar):
        self.bar = bar
        self.task = None
        self.plain = isinstance(bar, _Lines)
        self.started = False
        self.predicting = False

    def __call__(self, e: dict) -> None:
        kind = e.get("event")
        tag = f"[{e['species']}] " if e.get("species") else ""
        if kind == "train_start":
            from ..detection.retrain import plan_lines

            self.max_epochs = e.get("max_epochs")
            for line in plan_lines(e):
                self.bar.console.print(f"{tag}{line}")
        elif kind == "lr_cycle":
            self.bar.console.print(
                f"{tag}learning-rate cycle {e['cycle']}: back to epoch "
                f"{e['from_epoch']}'s weights, lr {e['lr']:.2g}"
            )
        elif kind == "epoch_start" and self.plain:
            if not self.started:
                self.started = True
                self.bar.console.print(
                    f"{tag}training: epoch {e['epoch']}, {e['iterations']} batches "
                    "(a line follows each epoch)"
                )
        elif kind == "predict" and self.plain:
            if not self.predicting:
                self.predicting = True
                self.bar.console.print(f"predicting {e['total']} images without annotations")
        elif kind == "epoch_start":
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"{tag}epoch {e['epoch']}", total=e["iterations"])
        elif kind == "step" and "iteration" in e and self.task is not None:
            self.bar.update(
                self.task,
                completed=e["iteration"],
                description=f"{tag}epoch {e['epoch']} loss {e.get('loss', 0):.3f} "
                f"lr {e.get('lr', 0):.2g}",
            )
        elif kind == "epoch":
            self.last_epoch = e["epoch"]
            val = e.get("val_mAP50")
            self.bar.console.print(
                f"{tag}epoch {e['epoch']}: loss {e['loss']:.3f}, val mAP@0.5 "
                f"{'n/a' if val is None else f'{val:.3f}'} (best {e.get('best_val_mAP50')!s:.6} "
                f"at epoch {e.get('best_epoch')})" + self._estimate(e)
            )
        elif kind == "step" and "step" in e:
            mark = {"done": "✓", "skipped": "-", "failed": "✗"}.get(e["status"], "?")
            self.bar.console.print(f"{mark} {e['step']}: {e['message']}")

    def _estimate(self, e: dict) -> str:
        """After the first epoch: how long the rest can take at most."""
        left = (getattr(self, "max_epochs", None) or 0) - e["epoch"] - 1
        if e["epoch"] != 0 or left <= 0 or not e.get("seconds"):
            return ""
        minutes = left * e["seconds"] / 60
        return (
            f"; {e['seconds']:.0f} s an epoch: at most {left} more ≈ {minutes:.0f} min "
            "(early stopping may end sooner; Ctrl-C keeps the last epoch for --resume)"
        )


@click.command("retrain")
@click.option(
    "--backbone",
    help="Detector backbone (default: the workspace's, else "
    f"{DEFAULT_BACKBONE}); `wb backbones` lists them.",
)
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    help=f"Class level (default: the workspace's, else {DEFAULT_LEVEL}).",
)
@click.option("--per-species", is_flag=True, help="One model per species (plus look-alikes).")
@_train_option(
    "--weights",
    help="Initial weights: auto (ImageNet weights when available "
    "here, else none) | imagenet | none | PATH.",
)
@click.option("--init-from", help="Start from a registered VERSION (or 'promoted').")
@_train_option("--loss", type=click.Choice(LOSSES), help="Box classification loss.")
@_train_option("--gamma-pos", type=float, help="ASL focusing of positives.")
@_train_option("--gamma-neg", type=float, help="ASL focusing of negatives.")
@_train_option("--clip", type=float, help="ASL probability margin for negatives.")
@_train_option(
    "--regimen",
    type=click.Choice(REGIMENS),
    help="combi: head, then all layers at a lower lr; finetune: head only; scratch: "
    "all layers from the start; auto: combi on pretrained weights, else "
    "scratch.",
)
@_train_option("--head-epochs", type=int, help="combi: epochs with the backbone frozen.")
@click.option("--no-negatives", is_flag=True, help="Leave background-only images out of training.")
@_train_option("--patience", type=int, help="Early stopping on val mAP@0.5.")
@_train_option("--max-epochs", type=int, help="At most this many epochs.")
@click.option(
    "--max-minutes",
    type=float,
    help="A safety cap on training time (budgets are "
    "epochs: a time budget gives another model on a busy machine).",
)
@_train_option(
    "--lr-cycles",
    type=int,
    help="After early stopping, restart from the best "
    "weights at a raised learning rate, this many times.",
)
@_train_option(
    "--lr-cycle-factor", type=float, help="How much each cycle raises the learning rate."
)
@click.option(
    "--image-size",
    type=int,
    help="Longer image side in pixels (default: the "
    "workspace's, else the backbone's; `wb backbones` lists them).",
)
@_train_option("--batch-size", type=int, help="Images per step and process.")
@_train_option("--lr", type=float, help="Learning rate.")
@_train_option("--seed", type=int, help="Seed for splits and training.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run from its last epoch.")
@click.option(
    "--promote",
    "promote_policy",
    type=click.Choice(["if-better", "always", "never"]),
    default="if-better",
    show_default=True,
    help="Promote the new model when it beats the current one on the test split.",
)
@_skip_options
@engine_options
@json_option
@pass_app
@domain_errors
@writes_workspace
def retrain_cmd(
    app,
    backbone,
    level,
    per_species,
    weights,
    init_from,
    loss,
    gamma_pos,
    gamma_neg,
    clip,
    regimen,
    head_epochs,
    no_negatives,
    patience,
    max_epochs,
    max_minutes,
    lr_cycles,
    lr_cycle_factor,
    image_size,
    batch_size,
    lr,
    seed,
    resume,
    promote_policy,
    engine_name,
    ray_address,
    as_json,
    **skips,
):
    """Train a detector on the annotated images, evaluate, register, promote if better,
    and predict on the images still without annotations.

    Example:

        wb retrain --max-epochs 6

        wb retrain --backbone densenet121 --image-size 512 --weights none

        wb retrain --engine ray --ray-address 10.0.0.5:6379   # predict step on Ray
    """
    from ..detection.metrics import format_metric as fmt
    from ..detection.retrain import RetrainOptions, headline, retrain
    from ..detection.train import TrainConfig
    from .common import progress

    config = TrainConfig.for_workspace(
        app.ws,
        backbone=backbone,
        level=level,
        image_size=image_size,
        weights=weights,
        init_from=init_from,
        loss=loss,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        clip=clip,
        regimen=regimen,
        head_epochs=head_epochs,
        patience=patience,
        max_epochs=max_epochs,
        max_minutes=max_minutes,
        lr_cycles=lr_cycles,
        lr_cycle_factor=lr_cycle_factor,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        negatives=not no_negatives,
    )
    pull, refresh = _labelstudio_hooks(app)
    options = RetrainOptions(
        train=config,
        per_species=per_species,
        resume=resume,
        split_seed=config.seed,
        promote=promote_policy.replace("-", "_"),
        skip={k[len("skip_") :] for k, v in skips.items() if v},
        pull=pull,
        refresh=refresh,
    )
    printer = None
    on_terminal = sys.stdout.isatty()
    try:
        with ExitStack() as stack:
            options.engine = open_engine_for(app, stack, engine_name, ray_address)
            bar = stack.enter_context(
                progress(transient=True) if on_terminal else _Lines(err=as_json)
            )
            printer = _ProgressPrinter(bar)
            report = retrain(app.ws, app.catalog, options, on_event=printer)
    except KeyboardInterrupt:
        done = getattr(printer, "last_epoch", None)
        kept = (
            f"epoch {done} is saved (under models/): `wb retrain --resume` continues from there"
            if done is not None
            else "no epoch had finished: nothing to resume"
        )
        raise click.ClickException(
            f"interrupted; {kept}. For a short run, pass --max-epochs N."
        ) from None
    if as_json:
        echo_json(report.to_dict())
        return
    # each step was printed as it finished (above); end with the result
    for version in report.versions:
        m = headline(app.catalog.model(version).metrics or {})
        click.echo(
            f"new: {version}: test mAP@0.5 {fmt(m.get('mAP50'))}, mAP {fmt(m.get('mAP'))}, "
            f"mAR@100 {fmt(m.get('mAR100'))}, accuracy {fmt(m.get('accuracy'))} on "
            f"{m.get('test_images', '-')} test images ({m.get('epochs', '-')} epochs)"
        )
    click.echo(f"promoted: {report.promoted or 'none'}")


@click.group("models", invoke_without_command=True)
@json_option
@pass_app
@click.pass_context
@domain_errors
def models_group(ctx, app, as_json):
    """List registered model versions with their headline metrics.

    Example:

        wb models --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..detection.metrics import format_metric as fmt
    from ..detection.registry import Registry
    from ..detection.retrain import headline

    versions = Registry.of(app.ws, app.catalog).list()
    if as_json:
        echo_json([{**mv.summary(), "metrics": headline(mv.metrics)} for mv in versions])
        return
    if not versions:
        click.echo("no models yet: run `wb retrain`")
        return
    # as wide as the longest backbone name shown, so columns line up (efficientnet_lite0)
    width = max([8] + [len(mv.summary()["backbone"] or "-") for mv in versions])
    click.echo(
        f"{'version':9} {'':2} {'task':8} {'backbone':{width}} {'level':9} {'mAP50':>7} {'mAP':>7} "
        f"{'acc':>7} {'valmAP50':>9}  parent"
    )
    for mv in versions:
        m = mv.metrics
        click.echo(
            f"{mv.version:9} {'*' if mv.promoted else '':2} {mv.task:8} "
            f"{mv.summary()['backbone'] or '-':{width}} {mv.level or '-':9} "
            f"{fmt(m.get('mAP50')):>7} {fmt(m.get('mAP')):>7} "
            f"{fmt(m.get('accuracy')):>7} {fmt(m.get('val_mAP50')):>9}  "
            f"{mv.parent or '-'}"
        )
        if m.get("finds_nothing"):
            click.echo(
                f"  {mv.version} finds nothing on the validation split: {m['finds_nothing']}"
            )


@models_group.command("promote")
@click.argument("version")
@json_option
@pass_app
@domain_errors
@writes_workspace
def promote_cmd(app, version, as_json):
    """Make VERSION the serving (promoted) model.

    Example:

        wb models promote v003
    """
    from ..detection.findsnothing import finds_nothing_warning
    from ..detection.registry import Registry

    mv = Registry.of(app.ws, app.catalog).promote(version)
    # promoting by hand is allowed; promoting blind is not: say when it finds nothing
    warning = finds_nothing_warning(app.ws, app.catalog, mv.version)
    if warning:
        click.echo(warning, err=True)
    if as_json:
        echo_json(mv.summary())
    else:
        click.echo(f"promoted {mv.version}")


@models_group.command("export")
@click.argument("version", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default=EXPORT_FORMATS[0],
    show_default=True,
    help="What to export to.",
)
@click.option(
    "--opset",
    type=click.IntRange(*OPSETS),
    default=DEFAULT_OPSET,
    show_default=True,
    help="ONNX operator set version.",
)
@json_option
@pass_app
@domain_errors
@writes_workspace
def export_cmd(app, version, fmt, opset, as_json):
    """Export VERSION (default: the promoted one) to model.onnx in its folder, for
    `wb serve --runtime onnx`. The file is checked at once against torch on the
    version's val images and two synthetic photos, and kept only when it gives the
    same boxes (docs/serve.md states the tolerance).

    Example:

        wb models export v003
    """
    from ..detection.onnx import export_onnx
    from ..detection.registry import Registry

    report = export_onnx(Registry.of(app.ws, app.catalog), version, opset=opset)
    if as_json:
        echo_json(report.to_dict())
        return
    iou = "-" if report.min_iou is None else f"{report.min_iou:.4f}"
    click.echo(
        f"exported {report.version} to {report.path} ({report.size_bytes / 1e6:.1f} MB, "
        f"opset {report.opset}) in {report.seconds:.1f} s"
    )
    click.echo(
        f"checked on {report.images} images ({report.val_images} of the val split, "
        f"{report.images - report.val_images} synthetic): {report.boxes} boxes, the same in "
        f"ONNX Runtime as in torch (lowest IoU {iou}, largest score difference "
        f"{report.max_score_diff:.1g})"
    )
    click.echo("serve it: wb serve --runtime onnx")


@click.command("backbones")
@json_option
@domain_errors
def backbones_cmd(as_json):
    """List the detector backbones: size, default image size, where their ImageNet weights
    come from, and whether those weights are on this machine now.

    Example:

        wb backbones
    """
    from ..detection.backbones import describe_backbones

    rows = describe_backbones()
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    click.echo(
        f"{'backbone':21} {'params':>7} {'body':>6} {'px':>4}  {'ImageNet weights from':40} "
        "here now"
    )
    for r in rows:
        name = r.name + (" *" if r.default else "")
        click.echo(
            f"{name:21} {r.parameters / 1e6:6.1f}M {r.body_parameters / 1e6:5.1f}M "
            f"{r.image_size:>4}  {r.weight_source:40} "
            + ("yes" if r.weights_available else f"no: {r.unavailable}")
        )
    click.echo(
        "* the default. params: the whole detector for one class; body: what ImageNet "
        "weights cover.\n`wb retrain --weights auto` (the default) uses ImageNet weights "
        "where they are here; `wb backbones --json` says why not."
    )


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(retrain_cmd)
    group.add_command(models_group)
    group.add_command(backbones_cmd)
