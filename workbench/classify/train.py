"""``train_classifier``: data from the catalog -> regimen -> early stopping -> registry.

The trained weights go into the registry (``task="classify"``) only when training ended;
an interrupted run registers nothing, and running it again starts over cleanly."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..detection.registry import ModelVersion, Registry
from ..errors import WorkbenchError
from . import models
from .config import ClassifyConfig
from .dataset import ClassifierDataset, catalog_images, class_names
from .metrics import scores

logger = logging.getLogger(__name__)


def _loader(items, classes, config, batch, shuffle, seed=0):
    mean, std = models.normalisation(config.backbone)
    ds = ClassifierDataset(items, classes, config.image_size, mean, std, config.augment)
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, generator=g, num_workers=0)


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
    from .config import FINETUNE_LR_FACTOR

    return [(False, config.lr, head), (True, config.lr * FINETUNE_LR_FACTOR, config.epochs - head)]


def train_classifier(ws, catalog, config: ClassifyConfig, on_progress=None) -> ModelVersion:
    """Train and register one classifier; returns its registered version."""
    models.check_weights(config.backbone, config.pretrained)  # before any work
    taxonomy = ws.taxonomy
    classes = class_names(config, taxonomy)
    items = catalog_images(catalog, taxonomy, config)
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "val"] or train
    torch.manual_seed(config.seed)
    model = models.build_classifier(config.backbone, len(classes), config.pretrained)
    phases = [p for p in _phases(config) if p[2] > 0]
    total = sum(p[2] for p in phases)
    done, best_acc, best_loss, best_state, history = 0, -1.0, float("inf"), None, []
    best_epoch = 0
    started = time.monotonic()
    loss_fn = torch.nn.CrossEntropyLoss()
    for phase, (all_layers, lr, epochs) in enumerate(phases):
        models.set_trainable(model, config.backbone, all_layers)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        batch = config.batch_for(all_layers)
        loader = _loader(train, classes, config, batch, True, config.seed + phase)
        val_loader = _loader(val, classes, config, batch, False)
        waited = 0
        for epoch in range(epochs):
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
            history.append(
                {
                    "phase": phase,
                    "epoch": epoch,
                    "loss": sum(losses) / len(losses),
                    "val_accuracy": acc,
                    "val_loss": val_loss,
                }
            )
            logger.info(
                "phase %d epoch %d loss %.4f val acc %.3f", phase, epoch, history[-1]["loss"], acc
            )
            done += 1
            if on_progress:
                on_progress(done, total)
            if improves(acc, val_loss, best_acc, best_loss):
                best_acc, best_loss, best_epoch, waited = acc, val_loss, done, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
            capped = config.max_minutes and time.monotonic() - started > config.max_minutes * 60
            if waited >= config.patience_epochs() or capped:
                break
    model.load_state_dict(best_state)
    metrics = {
        "val_accuracy": best_acc,
        "val_loss": best_loss,
        "best_epoch": best_epoch,  # 1-based, over all phases
        "epochs_run": done,
        "train_seconds": round(time.monotonic() - started, 1),
        "parameters": models.parameter_count(model),
        "n_train": len(train),
        "n_val": len(val),
        "history": history,
    }
    data = {s: [i.image_id for i in items if i.split == s] for s in ("train", "val", "test")}
    with tempfile.TemporaryDirectory(prefix="wb-classify-") as tmp:
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        registry = Registry.of(ws, catalog)
        mv = registry.register(
            weights, config.to_dict(), classes, config.level, metrics, data, task="classify"
        )
    if registry.promoted(task="classify") is None:
        registry.promote(mv.version)
    return registry.get(mv.version)


def load_classifier(mv: ModelVersion):
    """The registered classifier's network (eval mode) and its config."""
    config = ClassifyConfig(**{**mv.config["train"], "pretrained": False})
    model = models.build_classifier(config.backbone, len(mv.classes), pretrained=False)
    model.load_state_dict(torch.load(mv.weights_path, map_location="cpu", weights_only=True))
    return model.eval(), config
