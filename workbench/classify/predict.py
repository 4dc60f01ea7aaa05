"""``classify_catalog``: a classifier's class probabilities for catalog images, stored per
image and version (``Catalog.store_classifications``).

Resumable: an image that already has an answer of that version is not run again (a
version's weights never change), and each batch is stored as soon as it is done, so an
interrupted run keeps what it did and the next run does the rest. Unreadable images are
returned, never dropped silently, and tried again next time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from ..detection.registry import Registry
from ..errors import WorkbenchError
from ..images import UnreadableImage, open_image
from . import models
from .config import DEFAULT_IMAGE_SET, DEFAULT_PREDICT_BATCH, IMAGE_SETS
from .dataset import image_tensor
from .train import load_classifier

logger = logging.getLogger(__name__)


@dataclass
class ClassifyRun:
    version: str
    images: str  # the IMAGE_SETS member asked for
    selected: int  # images in that set
    predicted: int  # classified now
    already: int  # had an answer of this version before
    unreadable: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"classifier {self.version}: {self.predicted} of {self.selected} '{self.images}' "
            f"images classified now, {self.already} had an answer already"
        )
        if self.unreadable:
            image_id, reason = self.unreadable[0]
            text += (
                f"; {len(self.unreadable)} unreadable images left out (e.g. image {image_id}: "
                f"{reason}); fix or exclude them, then run it again"
            )
        return text


def select_images(catalog, images: str) -> list:
    if images not in IMAGE_SETS:
        raise WorkbenchError(f"unknown image set '{images}'; known: {', '.join(IMAGE_SETS)}")
    if images == "unannotated":
        return catalog.images(status="active", annotated=False)
    rows = catalog.images(status="active")
    return [im for im in rows if not im.label] if images == "unlabelled" else rows


@torch.inference_mode()
def classify_catalog(
    ws,
    catalog,
    version: str | None = None,
    images: str = DEFAULT_IMAGE_SET,
    batch_size: int = DEFAULT_PREDICT_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> ClassifyRun:
    """Run ``version`` (default: the promoted classifier) on the ``images`` set and store
    each image's class probabilities; images with an answer of that version are skipped."""
    if batch_size < 1:
        raise WorkbenchError("--batch-size must be at least 1")
    mv = Registry.of(ws, catalog).resolve(version, task="classify")
    chosen = select_images(catalog, images)
    have = catalog.classifications(mv.version, [im.id for im in chosen])
    todo = [im for im in chosen if im.id not in have]
    run = ClassifyRun(mv.version, images, len(chosen), 0, len(chosen) - len(todo))
    if not todo:
        return run
    model, config = load_classifier(mv)
    mean, std = models.normalisation(config.backbone)
    for start in range(0, len(todo), batch_size):
        ids, xs = [], []
        for im in todo[start : start + batch_size]:
            try:
                img = open_image(im.path)
            except UnreadableImage as exc:
                run.unreadable.append((im.id, exc.reason))
                continue
            ids.append(im.id)
            xs.append(image_tensor(img, config.image_size, mean, std))
        if xs:
            probs = torch.softmax(model(torch.stack(xs)), dim=1).tolist()
            catalog.store_classifications(
                mv.version,
                {
                    i: {c: round(p, 6) for c, p in zip(mv.classes, row, strict=True)}
                    for i, row in zip(ids, probs, strict=True)
                },
            )
            run.predicted += len(ids)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(todo)), len(todo))
    if run.unreadable:
        logger.warning("%d images could not be read for classification", len(run.unreadable))
    return run
