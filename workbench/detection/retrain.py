"""Closing the loop: pull -> train -> register -> evaluate -> promote -> predict -> refresh.

``retrain(ws, catalog, options, on_event)`` runs the steps in order; each can be skipped
and each reports what it did (``StepReport``). The Label Studio steps are hooks
(``options.pull`` / ``options.refresh``: callables taking ``(ws, catalog)`` and returning
a one-line summary); without one they report "not configured".

A new version is registered before it is evaluated, because evaluation works on
registered versions (``evaluate_model(ws, catalog, version, split)``). Promotion then
compares it with the current promoted model *re-evaluated now on the same sticky test
split*, so the two numbers are on identical images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError, check_choice
from .backbones import get_backbone
from .dataset import collect_samples
from .findsnothing import (  # noqa: F401  (names kept importable from here)
    FLAT_MIN_BOXES,
    FLAT_SCORE_BAND,
    FLAT_SURE,
    finds_nothing,
    finds_nothing_warning,
)
from .metrics import format_metric
from .predict import predict_catalog
from .registry import ModelVersion, Registry
from .splits import DEFAULT_FRACTIONS, ensure_splits
from .train import CHECKPOINT, CURVES_PNG, METRICS_CSV, TrainConfig, TrainResult, discard_run, fit

logger = logging.getLogger(__name__)

STEPS = ("pull", "train", "register", "evaluate", "promote", "predict", "refresh")
PROMOTE_POLICIES = ("if_better", "always", "never")
HEADLINE = (
    "mAP50",
    "mAP",
    "mAR100",
    "accuracy",
    "test_images",
    "val_mAP50",
    "best_epoch",
    "epochs",
    "finds_nothing",
)
Hook = Callable[[Any, Any], str]


@dataclass
class RetrainOptions:
    train: TrainConfig = field(default_factory=TrainConfig)
    per_species: bool = False
    # True: continue `models/.training*` with its checkpoint's settings (`--resume`);
    # "matching": continue a checkpoint in the run folder only when it is of these very
    # settings and data (refused when of others), else start afresh (a study's cell)
    resume: bool | str = False
    run_root: Path | None = None  # the run folders' parent (default: models/.training*)
    skip_species: frozenset[str] = frozenset()  # per-species models already registered
    extra_metrics: dict[str, Any] = field(default_factory=dict)  # joined at registration
    split_fractions: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    split_seed: int = 0
    promote: str = "if_better"  # if_better | always | never
    promote_metric: str = "mAP50"
    skip: set[str] = field(default_factory=set)
    pull: Hook | None = None  # wired by the Label Studio area
    refresh: Hook | None = None
    engine: Any = None  # workbench.engine engine for the predict step (default local)

    def __post_init__(self) -> None:
        unknown = set(self.skip) - set(STEPS)
        if unknown:
            raise WorkbenchError(
                f"unknown steps to skip: {sorted(unknown)}; steps are: {', '.join(STEPS)}"
            )
        check_choice("promotion policy", self.promote, PROMOTE_POLICIES)
        if self.resume not in (False, True, "matching"):
            raise WorkbenchError(f"resume must be True, False or 'matching', not {self.resume!r}")


@dataclass
class StepReport:
    step: str
    status: str  # done | skipped | failed
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RetrainReport:
    steps: list[StepReport] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    promoted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "promoted": self.promoted,
            "steps": [vars(s) for s in self.steps],
        }


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in HEADLINE if k in metrics}


def training_targets(ws, options: RetrainOptions) -> list[tuple[str | None, list[str]]]:
    """(species or None, classes) for each model to train (``skip_species`` included)."""
    tax, level = ws.taxonomy, options.train.level
    classes = tax.classes(level)
    if not options.per_species:
        return [(None, classes)]
    extra = set(tax.lookalike_species())
    out = []
    for sp in tax.species_names:
        if sp in extra:
            continue
        keep = {sp} | extra
        out.append((sp, [c for c in classes if tax.species_of(c) in keep]))
    if not out:
        raise WorkbenchError("--per-species needs at least one species that is not a look-alike")
    return out


def run_dir_for(ws, species: str | None, root: Path | None = None) -> Path:
    if root is not None:
        return Path(root) / (species or "all")
    return ws.models_dir / (".training" if species is None else f".training-{species}")


def plan_training(config: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """The concrete config a run will use, and why each choice (before any work: weights
    that cannot be had fail here, not after the pull)."""
    config, why = config.resolved()
    spec = get_backbone(config.backbone)
    why.insert(0, f"backbone: {config.backbone} ({spec.description}) at {config.image_size} px")
    if config.regimen == "combi" and config.weights == "none" and not config.init_from:
        why.append(
            f"warning: --regimen combi on random weights spends its {config.head_epochs} "
            "head-only epochs on random features: use --regimen scratch, or pretrained "
            "weights (--weights auto)"
        )
    return config, why


def plan_lines(e: dict) -> list[str]:
    """A ``train_start`` event as the lines a person reads before training starts."""
    n = e.get("images") or {}
    cap = f", at most {e['max_minutes']:g} min" if e.get("max_minutes") else ""
    cycles = f", {e['lr_cycles']} learning-rate cycles" if e.get("lr_cycles") else ""
    return [
        f"plan: {e.get('backbone')} at {e.get('image_size')} px, weights {e.get('weights')}, "
        f"regimen {e.get('regimen')}; {n.get('train', 0)} train / {n.get('val', 0)} val / "
        f"{n.get('test', 0)} test images; up to {_epochs(e.get('max_epochs'))}, early "
        f"stopping after {e.get('patience')} without improvement{cap}{cycles}"
        + (" (resuming)" if e.get("resume") else "")
    ] + [f"  {line}" for line in e.get("plan") or []]


def _epochs(n) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def val_verdict(ws, catalog, version: str) -> str | None:
    """``finds_nothing`` of the version's predictions on the validation split, at the
    display floor of Label Studio tasks."""
    from ..labelstudio.tasks import DISPLAY_MIN_SCORE
    from .evaluate import catalog_items, load_model, predict_items

    model = load_model(ws, catalog, version)
    items = catalog_items(ws, catalog, model, "val")
    if not items:
        return None
    detections, _ = predict_items(model.predictor, items)
    return finds_nothing(detections.values(), DISPLAY_MIN_SCORE)


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def retrain(
    ws,
    catalog,
    options: RetrainOptions | None = None,
    on_event: Callable[[dict], None] | None = None,
) -> RetrainReport:
    options = options or RetrainOptions()
    emit = on_event or (lambda e: None)
    report = RetrainReport()
    registry = Registry.of(ws, catalog)

    def step(name: str, status: str, message: str, **details) -> StepReport:
        s = StepReport(name, status, message, details)
        report.steps.append(s)
        emit({"event": "step", "step": name, "status": status, "message": message})
        return s

    plan: list[str] = []
    if "train" not in options.skip and options.resume is not True:
        import dataclasses

        config, plan = plan_training(options.train)
        options = dataclasses.replace(options, train=config)

    # -- pull ------------------------------------------------------------------
    if "pull" in options.skip:
        step("pull", "skipped", "skipped (--skip-pull)")
    elif options.pull is None:
        step(
            "pull", "skipped", "Label Studio is not configured for pulling; using the catalog as is"
        )
    elif not _is_main_process():
        step("pull", "skipped", "pull runs once, before torchrun (`wb pull`)")
    else:
        step("pull", "done", options.pull(ws, catalog))

    # -- train + register + evaluate + promote, per model ----------------------
    new_versions: list[ModelVersion] = []
    if "train" in options.skip:
        step("train", "skipped", "skipped (--skip-train)")
    else:
        splits = ensure_splits(catalog, ws.taxonomy, options.split_fractions, options.split_seed)
        for species, classes in training_targets(ws, options):
            if species is not None and species in options.skip_species:
                continue
            result = _train_one(
                ws, catalog, registry, options, species, classes, splits, emit, step, plan
            )
            if result is None:
                continue
            if not result.is_main:
                return report  # other DDP ranks only train; rank 0 writes and reports
            mv = _register(ws, registry, options, species, result, step)
            if mv is None:
                continue
            new_versions.append(mv)
            report.versions.append(mv.version)
            mv = _evaluate(ws, catalog, registry, mv, options, step)
            _promote(ws, catalog, registry, mv, options, species, step)

    current = registry.promoted()
    report.promoted = current.version if current else None

    # -- predict ------------------------------------------------------------------
    if "predict" in options.skip:
        step("predict", "skipped", "skipped (--skip-predict)")
    elif current is None:
        step("predict", "skipped", "no promoted model to predict with")
    else:
        have = set(catalog.predictions(current.version))
        unannotated = catalog.images(status="active", annotated=False)
        todo = [im.id for im in unannotated if im.id not in have]
        if not todo:
            step(
                "predict",
                "done",
                f"{current.version}: no images without annotations"
                if not unannotated
                else f"{current.version}: all {len(unannotated)} images "
                "without annotations already have its predictions",
            )
        else:
            run = predict_catalog(
                ws,
                catalog,
                current.version,
                todo,
                on_progress=lambda d, t: emit({"event": "predict", "done": d, "total": t}),
                engine=options.engine,
            )
            step(
                "predict",
                "done",
                f"{current.version}: {run.detections} detections on "
                f"{run.images} images without annotations"
                + (f" ({len(run.unreadable)} unreadable)" if run.unreadable else ""),
                images=run.images,
                detections=run.detections,
                unreadable=[i for i, _ in run.unreadable],
            )

    # -- refresh ------------------------------------------------------------------
    if "refresh" in options.skip:
        step("refresh", "skipped", "skipped (--skip-refresh)")
    elif options.refresh is None:
        step(
            "refresh", "skipped", "Label Studio is not configured; predictions stay in the catalog"
        )
    else:
        step("refresh", "done", options.refresh(ws, catalog))
    return report


def _train_one(
    ws, catalog, registry, options, species, classes, splits, emit, step, plan
) -> TrainResult | None:
    import dataclasses

    config = dataclasses.replace(options.train, species=species)
    tag = f" ({species})" if species else ""
    samples = collect_samples(catalog, ws.taxonomy, classes, config.level).samples
    by_split: dict[str, list] = {"train": [], "val": [], "test": []}
    for s in samples:
        sp = splits.get(s.image_id)
        if sp in by_split:
            by_split[sp].append(s)
    if not config.negatives:
        by_split["train"] = [s for s in by_split["train"] if not s.is_negative]
    run_dir = run_dir_for(ws, species, options.run_root)
    resume = options.resume
    if resume is True and not (run_dir / CHECKPOINT).is_file():
        raise WorkbenchError(
            f"nothing to resume{tag}: no interrupted run in {run_dir}. "
            "Run `wb retrain` without --resume."
        )
    if resume is False and (run_dir / CHECKPOINT).is_file():
        logger.warning(
            "an interrupted run%s is in %s; starting afresh (use --resume to continue it)",
            tag,
            run_dir,
        )
        discard_run(run_dir)
    if not by_split["train"]:
        step(
            "train",
            "failed",
            f"no training images{tag}: annotate images (or ingest annotated data) first",
            species=species,
        )
        raise WorkbenchError(
            f"no training images{tag}: annotate images (or ingest annotated "
            "data) before `wb retrain`"
        )
    init_state = None
    if config.init_from and resume is not True:
        parent = registry.resolve(None if config.init_from == "promoted" else config.init_from)
        # the parent's layout (frozen BatchNorm or not) and backbone, then its weights
        parent_train = parent.config.get("train", {})
        config = dataclasses.replace(
            config,
            init_from=parent.version,
            backbone=parent_train.get("backbone", config.backbone),
            weights=parent_train.get("weights", config.weights),
        )
        init_state = torch.load(parent.weights_path, map_location="cpu", weights_only=True)
    emit(
        {
            "event": "train_start",
            "species": species,
            "classes": classes,
            "images": {k: len(v) for k, v in by_split.items()},
            "plan": plan,
            "backbone": config.backbone,
            "weights": config.weights,
            "regimen": config.regimen,
            "image_size": config.image_size,
            "max_epochs": config.max_epochs,
            "patience": config.patience,
            "max_minutes": config.max_minutes,
            "lr_cycles": config.lr_cycles,
            "resume": resume is True or (run_dir / CHECKPOINT).is_file(),
        }
    )
    result = fit(
        config,
        classes,
        by_split["train"],
        by_split["val"],
        run_dir,
        resume=resume,
        init_state=init_state,
        test=by_split["test"],
        on_event=lambda e: emit({**e, "species": species}),
    )
    step(
        "train",
        "done",
        f"{config.backbone}{tag}: {_epochs(result.epochs)} on {len(by_split['train'])} images, "
        f"stopped by {result.stopped}; best val mAP@0.5 "
        f"{_fmt(result.best_val_mAP50)} at epoch {result.best_epoch}",
        species=species,
        epochs=result.epochs,
        stopped=result.stopped,
        best_val_mAP50=result.best_val_mAP50,
        images_per_second=result.images_per_second,
    )
    return result


def _fmt(value) -> str:
    return format_metric(value, missing="n/a")


def _register(ws, registry, options, species, result: TrainResult, step) -> ModelVersion | None:
    import json

    import torch as _torch

    ckpt = _torch.load(result.run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    config = ckpt["config"]
    metrics = {
        "val_mAP50": result.best_val_mAP50,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "stopped": result.stopped,
        "train_seconds": round(result.seconds, 1),
        "train_images_per_second": round(result.images_per_second, 3),
        **options.extra_metrics,
    }
    if "register" in options.skip:
        step(
            "register",
            "skipped",
            f"skipped (--skip-register); the trained weights stay in {result.run_dir}",
        )
        return None
    mv = registry.register(
        result.weights_path,
        config,
        result.classes,
        config["level"],
        metrics,
        ckpt["data"],
        parent=config.get("init_from"),
        extra_files=[result.run_dir / METRICS_CSV, result.run_dir / CURVES_PNG],
    )
    discard_run(result.run_dir)
    step(
        "register",
        "done",
        f"registered {mv.version}" + (f" ({species})" if species else "") + f" in {mv.path}",
        version=mv.version,
    )
    logger.debug("registered %s: %s", mv.version, json.dumps(metrics))
    return mv


def evaluate_version(ws, catalog, version: str, split: str = "test") -> dict[str, Any]:
    """The evaluation area's ``evaluate_model`` (``.metrics`` dict with ``mAP50``)."""
    from .evaluate import evaluate_model

    return evaluate_model(ws, catalog, version, split=split).metrics


def _evaluate(ws, catalog, registry, mv: ModelVersion, options, step) -> ModelVersion:
    if "evaluate" in options.skip:
        step("evaluate", "skipped", "skipped (--skip-evaluate)")
        return mv
    try:
        m = evaluate_version(ws, catalog, mv.version, "test")
    except ImportError as exc:
        step("evaluate", "skipped", f"evaluation is not available ({exc})")
        return mv
    test = {
        "mAP50": m.get("mAP50"),
        "mAP": m.get("mAP"),
        "mAR100": m.get("mAR100"),
        "accuracy": m.get("accuracy"),
        "test_images": m.get("images"),
    }
    mv = registry.update_metrics(mv.version, {**test, "test": m})
    step(
        "evaluate",
        "done",
        f"{mv.version} on the test split ({test['test_images']} images): "
        f"mAP@0.5 {_fmt(test['mAP50'])}, mAP {_fmt(test['mAP'])}, "
        f"accuracy {_fmt(test['accuracy'])}",
        **test,
    )
    return mv


def _promote(ws, catalog, registry, mv: ModelVersion, options, species, step) -> None:
    key = options.promote_metric
    current = registry.promoted()
    if "promote" in options.skip or options.promote == "never":
        step(
            "promote",
            "skipped",
            f"{mv.version} not promoted (promotion is off); "
            f"`wb models promote {mv.version}` promotes it",
        )
        return
    if species is not None and current is not None:
        step(
            "promote",
            "skipped",
            f"{mv.version} is a per-species model ({species}); "
            f"the serving model stays {current.version}",
        )
        return
    empty = val_verdict(ws, catalog, mv.version)
    if empty:
        mv = registry.update_metrics(mv.version, {"finds_nothing": empty})
    if empty and options.promote != "always":
        stays = f"{current.version} stays promoted" if current else "no model is promoted"
        step(
            "promote",
            "skipped",
            f"{mv.version} not promoted: it finds nothing on the validation split ({empty}); "
            f"{stays}. Train longer or on more images; `--promote always` or "
            f"`wb models promote {mv.version}` promotes it anyway",
            finds_nothing=empty,
        )
        return
    if current is None or options.promote == "always":
        registry.promote(mv.version)
        why = "no model was promoted yet" if current is None else "promotion policy is 'always'"
        warn = f"; warning: it finds nothing on the validation split ({empty})" if empty else ""
        step("promote", "done", f"promoted {mv.version} ({why}){warn}", version=mv.version)
        return
    new = mv.metrics.get(key)
    if new is None:
        step(
            "promote",
            "skipped",
            f"{mv.version} has no test {key} (evaluation skipped?); "
            f"{current.version} stays promoted",
        )
        return
    # the current model, measured now on the same sticky test split
    old = evaluate_version(ws, catalog, current.version, "test").get(key)
    if old is None or new > old:
        registry.promote(mv.version)
        step(
            "promote",
            "done",
            f"promoted {mv.version}: test {key} {_fmt(new)} beats "
            f"{current.version}'s {_fmt(old)} on the same test split",
            version=mv.version,
            new=new,
            old=old,
        )
    else:
        step(
            "promote",
            "skipped",
            f"kept {current.version}: {mv.version}'s test {key} "
            f"{_fmt(new)} does not beat {_fmt(old)} on the same test split",
            new=new,
            old=old,
        )
