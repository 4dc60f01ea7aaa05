"""Training a detector: config -> data loaders -> model -> epochs, with early stopping,
atomic per-epoch checkpoints, ``resume``, CUDA+AMP when present, and DDP under torchrun.

``fit`` knows nothing of the catalog: it takes samples and a run folder. Everything a
resumed run needs is in one checkpoint dict (model, optimizer, scaler, epoch, config,
classes, data snapshot, early-stopping state, history); the learning rate is a function
of the epoch and the regimen, so there is no scheduler state to carry.

The regimens (the second study's names):

- ``combi``: ``head_epochs`` epochs with the backbone body frozen (FPN, RPN and box heads
  train), then all layers at ``lr * finetune_lr_factor``.
- ``finetune``: the backbone body stays frozen throughout.
- ``scratch``: all layers train from the first epoch at ``lr``.
- ``auto`` (default): ``combi`` when the body starts from pretrained weights, else
  ``scratch`` (head-only epochs on random features learn on noise).

``lr_cycles`` (the reference study's learning-rate cycle): when early stopping ends a
run, training restarts from the best epoch's weights with the learning rate raised by
``lr_cycle_factor`` over the last one, until patience runs out again; that many times.

``TrainConfig.resolved()`` turns ``auto`` choices (weights, regimen, image size) into
concrete ones and says why; the resolved config is what checkpoints and the registry keep.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..errors import WorkbenchError, check_choice
from ..faults import fault_point
from ..fsutil import (
    atomic_write_bytes,
    atomic_write_text,
    remove_leftover_temps,
    require_free_space,
)
from .backbones import (
    DEFAULT_BACKBONE,
    backbone_parameters,
    create_detector,
    default_image_size,
    get_backbone,
)
from .dataset import DetectionDataset, Sample, annotations_hash, collate
from .engine import MetricMeter, evaluate, train_one_epoch
from .losses import make_classification_loss
from .names import REGIMENS
from .transforms import AugmentConfig, make_transforms
from .weights import load_matching, resolve_weights

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST_WEIGHTS = "best.pt"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"


@dataclass
class TrainConfig:
    """Every option of a training run; stored whole in checkpoints and the registry."""

    backbone: str = DEFAULT_BACKBONE
    level: str = "species"
    species: str | None = None  # set for a per-species model
    weights: str = "auto"  # auto | imagenet | none | PATH
    init_from: str | None = None  # a registered version to start from
    loss: str = "ce"  # ce | asl
    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05
    regimen: str = "auto"
    head_epochs: int = 3
    lr: float = 0.01
    finetune_lr_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    clip_grad_norm: float | None = None  # cap on the gradients' total norm (None: no cap)
    negatives: bool = True
    patience: int = 15
    max_epochs: int = 100
    max_minutes: float | None = None  # a safety cap; budgets are epochs (reproducible)
    lr_cycles: int = 0
    lr_cycle_factor: float = 2.0
    image_size: int | None = None  # None: the backbone's default
    batch_size: int = 2
    workers: int = 0
    seed: int = 0
    hflip: float = 0.5
    scale_jitter: tuple[float, float] | None = (0.75, 1.25)
    color_jitter: bool = True
    amp: bool = True  # only ever used on CUDA
    box_batch_size_per_image: int | None = None  # None: the backbone's default (128)
    rpn_post_nms_top_n_test: int | None = None  # None: the backbone's default (300)
    val_score_threshold: float = 0.5

    def __post_init__(self) -> None:
        check_choice("regimen", self.regimen, REGIMENS)
        if self.scale_jitter is not None:
            self.scale_jitter = tuple(self.scale_jitter)
        if self.image_size is None:
            self.image_size = default_image_size(self.backbone)
        for name in ("patience", "max_epochs", "image_size", "batch_size"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"--{name.replace('_', '-')} must be at least 1")
        if self.lr_cycles < 0:
            raise WorkbenchError("--lr-cycles must be 0 or more")
        if self.lr_cycle_factor <= 0:
            raise WorkbenchError("--lr-cycle-factor must be above 0")

    @classmethod
    def for_workspace(cls, ws, **overrides: Any) -> TrainConfig:
        """A config from the workspace's ``[model]`` settings (backbone, level, image
        size), with ``overrides`` on top; an override of None means "not given"."""
        given = {**ws.model_settings(), **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**given)

    def resolved(self) -> tuple[TrainConfig, list[str]]:
        """This config with ``auto`` weights and regimen made concrete, and one line per
        choice saying why. Fails fast when asked-for weights cannot be had."""
        import dataclasses

        if self.init_from and self.weights != "auto":
            # a registered model's own weights follow: its initial ones are not read again
            weights, reason = self.weights, f"its initial weights were {self.weights}"
        else:
            weights, reason = resolve_weights(
                self.weights, self.backbone, get_backbone(self.backbone).weights
            )
        why = [
            f"weights: from the registered model {self.init_from} (layout: {reason})"
            if self.init_from
            else f"weights: {reason}"
        ]
        regimen = self.regimen
        if regimen == "auto":
            pretrained_body = weights != "none" and not self.init_from
            regimen = "combi" if pretrained_body else "scratch"
            why.append(
                "regimen: combi (head first, then all layers at a lower learning rate) "
                "on pretrained weights"
                if pretrained_body
                else "regimen: scratch (all layers from the first epoch): "
                + (
                    "continuing a trained detector"
                    if self.init_from
                    else "head-only epochs on random weights learn on noise"
                )
            )
        return dataclasses.replace(self, weights=weights, regimen=regimen), why

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scale_jitter"] = list(self.scale_jitter) if self.scale_jitter else None
        return d

    def detector_options(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "box_batch_size_per_image": self.box_batch_size_per_image,
            "rpn_post_nms_top_n_test": self.rpn_post_nms_top_n_test,
        }

    def body_frozen(self, epoch: int) -> bool:
        return self.regimen == "finetune" or (self.regimen == "combi" and epoch < self.head_epochs)

    def lr_for(self, epoch: int, cycle: int = 0) -> float:
        lr = self.lr * self.lr_cycle_factor**cycle
        if self.regimen == "combi" and epoch >= self.head_epochs:
            return lr * self.finetune_lr_factor
        return lr


def build_model(
    config: TrainConfig, classes: list[str], weights: str | None = None, load_weights: bool = True
):
    """The detector for ``config``. ``load_weights=False`` (reloading a trained model):
    the layout of ``config.weights`` without reading them."""
    loss = make_classification_loss(config.loss, config.gamma_pos, config.gamma_neg, config.clip)
    return create_detector(
        config.backbone,
        len(classes) + 1,
        weights=weights if weights is not None else config.weights,
        classification_loss=loss,
        load_weights=load_weights,
        **config.detector_options(),
    )


@dataclass
class TrainResult:
    run_dir: Path
    classes: list[str]
    best_epoch: int | None
    best_val_mAP50: float | None
    epochs: int  # epochs completed
    stopped: str  # patience | max_epochs | max_minutes
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    is_main: bool = True  # rank 0 (the only one that writes)

    @property
    def weights_path(self) -> Path:
        return self.run_dir / BEST_WEIGHTS


# ---- distributed ------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> Dist:
    """DDP when launched by torchrun (``WORLD_SIZE`` > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local)


def pick_device(d: Dist) -> torch.device:
    return (
        torch.device(f"cuda:{d.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    )


def _broadcast(value, d: Dist):
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---- the run -------------------------------------------------------------------------
def data_snapshot(splits: dict[str, list[Sample]]) -> dict[str, Any]:
    every = [s for ss in splits.values() for s in ss]
    return {
        "image_ids": {k: sorted(s.image_id for s in v) for k, v in splits.items()},
        "annotations_sha256": annotations_hash(every),
        "images": {k: len(v) for k, v in splits.items()},
    }


def _set_phase(model, config: TrainConfig, epoch: int, optimizer, cycle: int = 0) -> None:
    frozen = config.body_frozen(epoch)
    body, _ = backbone_parameters(model)
    for p in body:
        p.requires_grad_(not frozen)
    for group in optimizer.param_groups:
        group["lr"] = config.lr_for(epoch, cycle)
    model.train()
    if frozen:  # frozen means frozen: BatchNorm statistics too
        model.backbone.body.eval()


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(history)
    atomic_write_text(run_dir / METRICS_CSV, buf.getvalue())


def disk_space_needed(model: torch.nn.Module, run_dir: Path) -> int:
    """Bytes a run writes at its peak, from the model's own tensors (weights W): best.pt
    (W) and checkpoint.pt (about 2W: the weights and SGD's momentum), each written
    whole beside the one it replaces, so best.pt + the old and the new checkpoint (5W);
    registering later needs less (best.pt, checkpoint.pt and a copy of the weights,
    4W). Less what ``run_dir`` holds already (a resumed run replaces it)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    held = sum(p.stat().st_size for p in Path(run_dir).glob("*") if p.is_file())
    return max(0, 5 * weights - held)


def _save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and validation mAP@0.5 per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["loss"] for h in history], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(
        epochs,
        [h.get("val_mAP50") if h.get("val_mAP50") is not None else math.nan for h in history],
        "s-",
        color="tab:green",
        label="val mAP@0.5",
    )
    ax2.set_ylabel("val mAP@0.5")
    ax2.set_ylim(0, 1)
    fig.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def fit(
    config: TrainConfig,
    classes: list[str],
    train: list[Sample],
    val: list[Sample],
    run_dir: Path,
    resume: bool | str = False,
    init_state: dict | None = None,
    on_event: Callable[[dict], None] | None = None,
    test: list[Sample] | None = None,
) -> TrainResult:
    """Train until early stopping or a limit; rank 0 writes ``run_dir``: checkpoint.pt
    (every epoch, atomically), best.pt (the best epoch's weights), metrics.csv and
    curves.png. With ``resume=True`` the checkpoint's config, classes and data are used
    (`wb retrain --resume`). With ``resume="matching"`` (a study's cell) a checkpoint in
    ``run_dir`` is resumed when it is of this very config, classes and data, refused
    when of others, and without one the run starts afresh. A resumed run restores the
    random states too, so it ends with the weights an uninterrupted run gives (CPU, one
    process)."""
    emit = on_event or (lambda e: None)
    d = init_distributed()
    device = pick_device(d)
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    state = None
    if resume == "matching":
        state = _matching_checkpoint(ckpt_path, config, classes, train, val, test)
    elif resume:
        if not ckpt_path.is_file():
            raise WorkbenchError(
                f"nothing to resume: no checkpoint at {ckpt_path}. "
                "Run `wb retrain` without --resume."
            )
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        config = TrainConfig.from_dict(state["config"])
        classes = state["classes"]
        by_id = {s.image_id: s for s in [*train, *val, *(test or [])]}
        ids = state["data"]["image_ids"]
        missing = [i for k in ("train", "val") for i in ids.get(k, []) if i not in by_id]
        if missing:
            raise WorkbenchError(
                f"cannot resume: {len(missing)} images of the interrupted "
                "run are no longer usable; start a fresh run."
            )
        train = [by_id[i] for i in ids["train"]]
        val = [by_id[i] for i in ids["val"]]
        logger.info("resuming %s after epoch %d", run_dir, state["epoch"])
    if not train:
        raise WorkbenchError(
            "no training images: annotate some images (or ingest annotated "
            "data) before `wb retrain`"
        )
    if state is None:
        config, _ = config.resolved()
    elif resume == "matching":
        config = TrainConfig.from_dict(state["config"])
    snapshot = (
        state["data"] if state else data_snapshot({"train": train, "val": val, "test": test or []})
    )
    if d.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed + d.rank)
    random.seed(config.seed + d.rank)  # the augmentations draw from Python's random too
    # resuming or starting from a trained detector: its layout, its weights (loaded below)
    model = build_model(config, classes, load_weights=state is None and init_state is None)
    if init_state is not None and state is None:
        load_matching(model, init_state, f"--init-from {config.init_from}")
    if d.is_main:  # refuse now, not after an epoch's training
        remove_leftover_temps(run_dir)  # what a killed run's checkpoint write left
        require_free_space(
            run_dir,
            disk_space_needed(model, run_dir),
            f"training {config.backbone} (checkpoints and the model's weights)",
        )
    model.to(device)
    body, head = backbone_parameters(model)
    optimizer = torch.optim.SGD(
        [{"params": body}, {"params": head}],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    use_amp = device.type == "cuda" and config.amp
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    start_epoch, best_epoch, best_map, bad_epochs, history = 0, None, None, 0, []
    cycle = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"] + 1
        best_epoch, best_map = state["best_epoch"], state["best_val_mAP50"]
        bad_epochs, history = state["bad_epochs"], state["history"]
        cycle = state.get("cycle", 0)
        if state.get("rng") and not d.enabled:  # exact resume (DDP ranks draw anew)
            torch.set_rng_state(state["rng"]["torch"])
            random.setstate(state["rng"]["python"])

    augment = AugmentConfig(config.hflip, config.scale_jitter, config.color_jitter)
    train_ds = DetectionDataset(train, classes, make_transforms(config.image_size, True, augment))
    val_ds = DetectionDataset(val, classes, make_transforms(config.image_size, False))
    # each rank its own shard; under DDP the remainder is dropped (a different few each
    # epoch) rather than padded with repeats, so ranks never train on the same image
    sampler = DistributedSampler(
        train_ds,
        num_replicas=d.world_size,
        rank=d.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=d.enabled,
    )
    loader = DataLoader(
        train_ds,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
    )
    val_loader = DataLoader(
        val_ds, batch_size=config.batch_size, num_workers=config.workers, collate_fn=collate
    )

    t0 = time.monotonic()
    deadline = t0 + config.max_minutes * 60 if config.max_minutes else None
    stopped, images, seconds = "max_epochs", 0, 0.0
    ddp_model, phase = None, None
    for epoch in range(start_epoch, config.max_epochs):
        _set_phase(model, config, epoch, optimizer, cycle)
        if d.enabled and config.body_frozen(epoch) != phase:
            # DDP must be rebuilt when the set of parameters with gradients changes
            ddp_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[d.local_rank] if device.type == "cuda" else None
            )
        phase = config.body_frozen(epoch)
        sampler.set_epoch(epoch)
        emit(
            {
                "event": "epoch_start",
                "epoch": epoch,
                "iterations": len(loader),
                "lr": config.lr_for(epoch, cycle),
                "frozen_body": phase,
                "cycle": cycle,
            }
        )
        meter = train_one_epoch(
            ddp_model or model,
            optimizer,
            loader,
            device,
            epoch,
            scaler,
            warmup_iters=config.warmup_iters if epoch == 0 else 0,
            meter=MetricMeter(on_step=emit, epoch=epoch),
            deadline=deadline,
            clip_grad_norm=config.clip_grad_norm,
        )
        images += meter.images
        seconds += meter.seconds
        row: dict[str, Any] = {
            "epoch": epoch,
            **{k: round(v, 6) for k, v in meter.means().items()},
            "lr": config.lr_for(epoch, cycle),
            "cycle": cycle,
            "images": meter.images,
            "seconds": round(meter.seconds, 3),
        }
        val_map = None
        if d.is_main and len(val_ds):
            val_map = (
                evaluate(model, val_loader, device, classes, config.val_score_threshold).mAP50
                or 0.0
            )
        val_map = _broadcast(val_map, d)
        row["val_mAP50"] = val_map
        history.append(row)
        improved = val_map is None or best_map is None or val_map > best_map
        if improved:
            best_epoch, best_map, bad_epochs = epoch, val_map, 0
        else:
            bad_epochs += 1
        if d.is_main:
            if improved:
                _save(model.state_dict(), run_dir / BEST_WEIGHTS)
            _save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler else None,
                    "epoch": epoch,
                    "config": config.to_dict(),
                    "classes": classes,
                    "data": snapshot,
                    "best_epoch": best_epoch,
                    "best_val_mAP50": best_map,
                    "bad_epochs": bad_epochs,
                    "cycle": cycle,
                    "history": history,
                    "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                },
                ckpt_path,
            )
            fault_point("train.checkpoint")
            _write_history(run_dir, history)
        emit({"event": "epoch", **row, "best_epoch": best_epoch, "best_val_mAP50": best_map})
        if deadline is not None and time.monotonic() > deadline:
            stopped = "max_minutes"
            break
        if bad_epochs >= config.patience:
            if cycle >= config.lr_cycles:
                stopped = "patience"
                break
            # the learning-rate cycle: back to the best weights, a higher rate, patience anew
            cycle, bad_epochs = cycle + 1, 0
            _restore_best(model, run_dir / BEST_WEIGHTS, d)
            optimizer.state.clear()  # momentum from the worse weights would pull back
            emit(
                {
                    "event": "lr_cycle",
                    "cycle": cycle,
                    "from_epoch": best_epoch,
                    "lr": config.lr_for(epoch + 1, cycle),
                }
            )
    if d.is_main and history:
        try:
            plot_history(history, run_dir / CURVES_PNG)
        except Exception as exc:  # a plot must never lose a trained model
            logger.warning("could not draw the training curves: %s", exc)
    if d.enabled:
        dist.barrier()
    return TrainResult(
        run_dir,
        list(classes),
        best_epoch,
        best_map,
        epochs=len(history),
        stopped=stopped,
        history=history,
        seconds=time.monotonic() - t0,
        images_per_second=images / seconds if seconds else 0.0,
        is_main=d.is_main,
    )


def _matching_checkpoint(
    ckpt_path: Path,
    config: TrainConfig,
    classes: list[str],
    train: list[Sample],
    val: list[Sample],
    test: list[Sample] | None,
) -> dict | None:
    """The checkpoint at ``ckpt_path`` when it is of this very run (resolved config,
    classes, data), None when there is none; one of another run is refused (resuming it
    would mix two runs)."""
    if not ckpt_path.is_file():
        return None
    remove_leftover_temps(ckpt_path.parent)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    resolved, _ = config.resolved()
    if state["config"] != resolved.to_dict() or state["classes"] != list(classes):
        raise WorkbenchError(
            f"{ckpt_path} is of another detector run (other settings); "
            f"remove {ckpt_path.parent} to start this one afresh"
        )
    now = data_snapshot({"train": train, "val": val, "test": test or []})
    if state["data"] != now:
        raise WorkbenchError(
            f"cannot resume {ckpt_path.parent}: the catalog's images or annotations changed "
            f"since it was interrupted; remove {ckpt_path.parent} to start afresh"
        )
    logger.info("resuming %s after epoch %d", ckpt_path.parent, state["epoch"])
    return state


def _restore_best(model, best_path: Path, d: Dist) -> None:
    if d.enabled:
        dist.barrier()  # rank 0 has written best.pt
    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))


def discard_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
