"""``train_classifier``: data from the catalog -> regimen -> early stopping -> registry.

The trained weights go into the registry (``task="classify"``) only when training ended;
an interrupted run registers nothing. Given a ``run_dir``, every epoch ends with one
checkpoint dict there (``checkpoint.pt``: weights, optimizer, phase and epoch, early
stopping's state, the best weights so far, the random states, the config, the classes
and the data), written whole; the same call again resumes after the last finished epoch
and ends as an uninterrupted run would. Without ``run_dir`` (`wb classify train`), an
interrupted run is simply run again."""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..detection.registry import ModelVersion, Registry
from ..errors import WorkbenchError
from ..faults import fault_point
from ..fsutil import atomic_write_bytes, remove_leftover_temps
from . import models
from .config import FINETUNE_LR_FACTOR, ClassifyConfig, config_of
from .dataset import ClassifierDataset, catalog_images, class_names
from .metrics import scores

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def _loader(items, classes, config, batch, shuffle, generator=None):
    mean, std = models.normalisation(config.backbone)
    ds = ClassifierDataset(items, classes, config.image_size, mean, std, config.augment)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, generator=generator, num_workers=0)


@torch.inference_mode()
def predict_labels(model, loader) -> tuple[list[int], list[int], torch.Tensor]:
    model.eval()
    truth, pred, probs = [], [], []
    for x, y in loader:
        p = torch.softmax(model(x), dim=1)
        probs.append(p)
        pred += p.argmax(1).tolist()
        truth += y.tolist()
    return truth, pred, torch.cat(probs) if probs else torch.empty(0)


def improves(acc: float, loss: float, best_acc: float, best_loss: float) -> bool:
    """Whether an epoch's validation (accuracy, loss) beats the best so far: a higher
    accuracy, or the same accuracy at a lower loss. Without the tie-break a small
    validation split that reaches accuracy 1.0 early keeps that first epoch's weights and
    throws every later epoch away (combi's all-layer phase included)."""
    return acc > best_acc or (acc == best_acc and loss < best_loss)


def nll(probs: torch.Tensor, truth: list[int]) -> float:
    """Mean negative log-likelihood of the true classes under ``probs`` (softmax rows)."""
    if not truth:
        return 0.0
    p = probs[torch.arange(len(truth)), torch.tensor(truth)]
    return float(-torch.log(p.clamp_min(1e-12)).mean())


def _phases(config: ClassifyConfig) -> list[tuple[bool, float, int]]:
    """(all layers, lr, epochs) per phase of the regimen."""
    if config.regimen == "transfer":
        return [(False, config.lr, config.epochs)]
    if config.regimen == "scratch":
        return [(True, config.lr, config.epochs)]
    head = min(config.head_epochs, config.epochs)
    return [(False, config.lr, head), (True, config.lr * FINETUNE_LR_FACTOR, config.epochs - head)]


def _save_checkpoint(state: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _resumable(run_dir: Path | None, config: ClassifyConfig, classes, data) -> dict | None:
    """The checkpoint in ``run_dir`` when it is of this very run, else None; a checkpoint
    of another config or other data is refused (it would mix two runs)."""
    if run_dir is None or not (run_dir / CHECKPOINT).is_file():
        return None
    remove_leftover_temps(run_dir)
    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    if state["config"] != config.to_dict() or state["classes"] != classes:
        raise WorkbenchError(
            f"{run_dir / CHECKPOINT} is of another classifier run (other settings); "
            f"remove {run_dir} to start this one afresh"
        )
    if {k: state["data"][k] for k in ("train", "val")} != {k: data[k] for k in ("train", "val")}:
        raise WorkbenchError(
            f"cannot resume {run_dir}: the catalog's training or validation images changed "
            f"since it was interrupted; remove {run_dir} to start afresh"
        )
    return state


def train_classifier(
    ws,
    catalog,
    config: ClassifyConfig,
    on_progress=None,
    run_dir: Path | None = None,
    extra_metrics: dict | None = None,
    promote_first: bool = True,
) -> ModelVersion:
    """Train and register one classifier; returns its registered version.

    ``run_dir``: checkpoint there after every epoch and resume from it (removed once the
    model is registered). ``extra_metrics`` join the version's metrics (a study's cell
    name, so a re-run can find a version it registered). ``promote_first``: promote the
    first classifier of the workspace (`wb classify train`); a study passes False."""
    models.check_weights(config.backbone, config.pretrained)  # before any work
    taxonomy = ws.taxonomy
    classes = class_names(config, taxonomy)
    items = catalog_images(catalog, taxonomy, config)
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "val"] or train
    data = {s: [i.image_id for i in items if i.split == s] for s in ("train", "val", "test")}
    run_dir = Path(run_dir) if run_dir is not None else None
    state = _resumable(run_dir, config, classes, data)
    torch.manual_seed(config.seed)
    model = models.build_classifier(config.backbone, len(classes), config.pretrained and not state)
    phases = [p for p in _phases(config) if p[2] > 0]
    total = sum(p[2] for p in phases)
    # what an epoch changes; the checkpoint holds it whole
    run = {
        "phase": 0,
        "epoch": 0,  # the next epoch of the phase
        "done": 0,
        "best_acc": -1.0,
        "best_loss": float("inf"),  # ties in accuracy go to the lower validation loss
        "best_epoch": 0,
        "best_state": None,
        "waited": 0,
        "history": [],
        "seconds": 0.0,
        "stopped": False,
    }
    if state is not None:
        model.load_state_dict(state["model"])
        run = {"best_loss": float("inf"), "best_epoch": 0, **state["run"]}
        torch.set_rng_state(state["torch_rng"])
        logger.info("resuming %s after %d epochs", run_dir, run["done"])
    started = time.monotonic() - run["seconds"]
    # the phase whose optimizer and shuffling the checkpoint holds mid-way, if any
    mid_phase = run["phase"] if state is not None and run["epoch"] > 0 else None
    loss_fn = torch.nn.CrossEntropyLoss()
    for phase, (all_layers, lr, epochs) in enumerate(phases):
        if phase < run["phase"] or run["stopped"]:
            continue
        models.set_trainable(model, config.backbone, all_layers)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        batch = config.batch_for(all_layers)
        shuffle = torch.Generator().manual_seed(config.seed + phase)
        if phase == mid_phase:
            opt.load_state_dict(state["optimizer"])
            shuffle.set_state(state["shuffle_rng"])
        loader = _loader(train, classes, config, batch, True, shuffle)
        val_loader = _loader(val, classes, config, batch, False)
        for epoch in range(run["epoch"], epochs):
            model.train()
            if not all_layers:
                model.eval()  # frozen body: keep its batch-norm statistics
            losses = []
            for x, y in loader:
                loss = loss_fn(model(x), y)
                if not torch.isfinite(loss):
                    raise WorkbenchError("training diverged (loss is not finite): lower --lr")
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            truth, pred, probs = predict_labels(model, val_loader)
            acc = scores(truth, pred, len(classes))["accuracy"]
            val_loss = nll(probs, truth)
            run["history"].append(
                {
                    "phase": phase,
                    "epoch": epoch,
                    "loss": sum(losses) / len(losses),
                    "val_accuracy": acc,
                    "val_loss": val_loss,
                }
            )
            logger.info(
                "phase %d epoch %d loss %.4f val acc %.3f",
                phase,
                epoch,
                run["history"][-1]["loss"],
                acc,
            )
            run["done"] += 1
            if improves(acc, val_loss, run["best_acc"], run["best_loss"]):
                run["best_acc"], run["best_loss"], run["waited"] = acc, val_loss, 0
                run["best_epoch"] = run["done"]
                run["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                run["waited"] += 1
            capped = config.max_minutes and time.monotonic() - started > config.max_minutes * 60
            run["stopped"] = bool(run["waited"] >= config.patience_epochs() or capped)
            last = epoch + 1 == epochs
            run["phase"], run["epoch"] = (phase + 1, 0) if last else (phase, epoch + 1)
            run["seconds"] = time.monotonic() - started
            if run_dir is not None:
                _save_checkpoint(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "shuffle_rng": shuffle.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "run": run,
                        "config": config.to_dict(),
                        "classes": classes,
                        "data": data,
                    },
                    run_dir / CHECKPOINT,
                )
                fault_point("classify.checkpoint")
            if on_progress:
                on_progress(run["done"], total)
            if run["stopped"]:
                break
        if run["stopped"]:
            break
    model.load_state_dict(run["best_state"])
    metrics = {
        "val_accuracy": run["best_acc"],
        "val_loss": run["best_loss"],
        "best_epoch": run["best_epoch"],  # 1-based, over all phases
        "epochs_run": run["done"],
        "train_seconds": round(time.monotonic() - started, 1),
        "parameters": models.parameter_count(model),
        "n_train": len(train),
        "n_val": len(val),
        "history": run["history"],
        **(extra_metrics or {}),
    }
    with tempfile.TemporaryDirectory(prefix="wb-classify-") as tmp:
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        registry = Registry.of(ws, catalog)
        mv = registry.register(
            weights, config.to_dict(), classes, config.level, metrics, data, task="classify"
        )
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    if promote_first and registry.promoted(task="classify") is None:
        registry.promote(mv.version)
    return registry.get(mv.version)


def load_classifier(mv: ModelVersion):
    """The registered classifier's network (eval mode) and its config."""
    config = config_of(mv)
    model = models.build_classifier(config.backbone, len(mv.classes), pretrained=False)
    model.load_state_dict(torch.load(mv.weights_path, map_location="cpu", weights_only=True))
    return model.eval(), config
