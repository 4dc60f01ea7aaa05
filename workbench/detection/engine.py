"""The two verbs of training, references/detection style: ``train_one_epoch`` and
``evaluate``. A meter wraps the loader, so the loop body only moves tensors and steps.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch

from ..errors import WorkbenchError
from ..faults import fault_point
from .metrics import evaluate_detections


class TrainingDiverged(WorkbenchError):
    """The loss became NaN or infinite."""

    def __init__(self, epoch: int, iteration: int, losses: dict[str, float]):
        self.epoch, self.iteration, self.losses = epoch, iteration, losses
        shown = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        super().__init__(
            f"training diverged at epoch {epoch}, iteration {iteration} ({shown}). "
            "Lower the learning rate (--lr), use a smaller --batch-size, or check the "
            "boxes of the newest annotations."
        )

    def __reduce__(self):  # picklable, so it crosses process pools and torchrun intact
        return type(self), (self.epoch, self.iteration, self.losses)


class MetricMeter:
    """Running means of named values. ``log_every(loader)`` yields the loader's items
    and, after each step, calls ``on_step`` with the iteration, means and ETA."""

    def __init__(self, on_step: Callable[[dict], None] | None = None, epoch: int = 0):
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.last: dict[str, float] = {}
        self.on_step = on_step
        self.epoch = epoch
        self.iterations = 0
        self.images = 0
        self.seconds = 0.0

    def update(self, n_images: int = 0, **values: float) -> None:
        self.images += n_images
        for k, v in values.items():
            self.sums[k] += float(v)
            self.counts[k] += 1
            self.last[k] = float(v)

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def log_every(self, iterable: Iterable, total: int | None = None):
        total = total if total is not None else len(iterable)  # type: ignore[arg-type]
        start = time.perf_counter()
        for item in iterable:
            yield item
            self.iterations += 1
            self.seconds = time.perf_counter() - start
            if self.on_step is not None:
                per_it = self.seconds / self.iterations
                self.on_step(
                    {
                        "event": "step",
                        "epoch": self.epoch,
                        "iteration": self.iterations,
                        "iterations": total,
                        "eta_s": per_it * max(total - self.iterations, 0),
                        **self.last,
                    }
                )

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def _to_device(targets, device):
    return [
        {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
        for t in targets
    ]


def train_one_epoch(
    model,
    optimizer,
    loader,
    device,
    epoch: int,
    scaler=None,
    warmup_iters: int = 0,
    meter: MetricMeter | None = None,
    deadline: float | None = None,
    clip_grad_norm: float | None = None,
) -> MetricMeter:
    """One pass over ``loader``. ``warmup_iters`` > 0 ramps the learning rate up
    linearly over the first iterations (epoch 0 only, as the references do); a
    ``deadline`` (``time.monotonic()``) ends the epoch early; ``clip_grad_norm`` caps the
    gradients' total norm (one bad batch then cannot throw a trained model into NaN)."""
    meter = meter or MetricMeter(epoch=epoch)
    warmup = None
    if warmup_iters > 0:
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1e-3, total_iters=min(warmup_iters, max(len(loader) - 1, 1))
        )
    for images, targets in meter.log_every(loader):
        images = [img.to(device, non_blocking=True) for img in images]
        targets = _to_device(targets, device)
        with torch.autocast(device.type, enabled=scaler is not None):
            loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
        values = {k: v.item() for k, v in loss_dict.items()}
        loss_value = sum(values.values())
        if not math.isfinite(loss_value):
            raise TrainingDiverged(epoch, meter.iterations, values)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip_grad_norm:
                scaler.unscale_(optimizer)
                _clip(optimizer, clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_grad_norm:
                _clip(optimizer, clip_grad_norm)
            optimizer.step()
        if warmup is not None:
            warmup.step()
        meter.update(
            n_images=len(images), loss=loss_value, lr=optimizer.param_groups[-1]["lr"], **values
        )
        fault_point("train.step")
        if deadline is not None and time.monotonic() > deadline:
            break
    return meter


def _clip(optimizer, max_norm: float) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_norm)


@torch.inference_mode()
def evaluate(model, loader, device, classes: list[str], score_threshold: float = 0.5):
    """Detections on ``loader`` scored with pycocotools (``metrics.evaluate_detections``);
    returns its ``EvaluationResult`` (``.mAP50``, ``.metrics``)."""
    model.eval()
    gt, preds = {}, {}
    for images, targets in loader:
        outputs = model([img.to(device) for img in images])
        for target, out in zip(targets, outputs):
            key = int(target["image_id"])
            gt[key] = [
                {"label": classes[int(lbl) - 1], "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}
                for b, lbl in zip(target["boxes"].tolist(), target["labels"].tolist())
            ]
            preds[key] = [
                {
                    "label": classes[int(lbl) - 1],
                    "x1": b[0],
                    "y1": b[1],
                    "x2": b[2],
                    "y2": b[3],
                    "score": s,
                }
                for b, lbl, s in zip(
                    out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist()
                )
            ]
    return evaluate_detections(gt, preds, classes=classes, score_threshold=score_threshold)
