"""Catalog images as a detection dataset of ``(image, target)`` pairs.

Which images: ``active`` (never duplicate, conflict, unreadable or excluded) and
``annotated`` (ground truth known: boxes, or none for a background-only negative).
Box labels map to the model's level through ``ws.taxonomy.to_level``; an image with a
box whose class the model does not have (another species in a per-species model, a
label outside the taxonomy) is left out whole, since half its ground truth would teach
the model that real objects are background.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from ..images import open_image
from ..taxonomy import BACKGROUND, Taxonomy, image_level_label

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    image_id: int
    path: str
    label: str  # image-level label at the model's level
    boxes: tuple[tuple[str, float, float, float, float], ...]  # (class, x1, y1, x2, y2)
    width: int | None = None
    height: int | None = None

    @property
    def is_negative(self) -> bool:
        return not self.boxes


@dataclass
class SampleSet:
    samples: list[Sample]
    left_out: Counter = field(default_factory=Counter)  # reason -> images

    def by_id(self) -> dict[int, Sample]:
        return {s.image_id: s for s in self.samples}


def collect_samples(
    catalog, taxonomy: Taxonomy, classes: list[str], level: str, image_ids=None
) -> SampleSet:
    """Active, annotated images whose boxes all map into ``classes`` at ``level``."""
    known = set(classes)
    images = catalog.images(status="active", annotated=True, ids=image_ids)
    boxes = catalog.boxes_by_image([im.id for im in images])
    out, left_out = [], Counter()
    for im in images:
        mapped, ok = [], True
        for b in boxes.get(im.id, []):
            label = taxonomy.to_level(b.label, level, unknown="none")
            if label not in known:
                ok = False
                break
            if b.x2 - b.x1 < 1 or b.y2 - b.y1 < 1:
                left_out["degenerate_boxes"] += 1
                continue
            mapped.append((label, float(b.x1), float(b.y1), float(b.x2), float(b.y2)))
        if not ok:
            left_out["images_with_classes_outside_the_model"] += 1
            continue
        img_label = taxonomy.to_level(im.label, level, unknown="none") if im.label else None
        if img_label is not None and img_label != BACKGROUND and img_label not in known:
            # e.g. an image labelled with another species that has no boxes yet
            left_out["images_with_classes_outside_the_model"] += 1
            continue
        label = image_level_label(img_label, [m[0] for m in mapped])
        out.append(Sample(im.id, im.path, label, tuple(mapped), im.width, im.height))
    if left_out:
        logger.info("left out of the data: %s", dict(left_out))
    return SampleSet(out, left_out)


def annotations_hash(samples: list[Sample]) -> str:
    """A hash of exactly the ground truth used (image ids, labels, boxes)."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.image_id):
        h.update(json.dumps([s.image_id, s.label, [list(b) for b in s.boxes]]).encode())
    return h.hexdigest()


class DetectionDataset(Dataset):
    """``dataset[i] -> (image tensor, target)``; target has ``boxes`` (N, 4 float, pixel
    xyxy), ``labels`` (N, int64, 1-based class index) and ``image_id``."""

    def __init__(self, samples: list[Sample], classes: list[str], transforms=None):
        self.samples = list(samples)
        self.classes = list(classes)
        self.index = {c: i + 1 for i, c in enumerate(self.classes)}
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.samples)

    def get_height_and_width(self, idx: int) -> tuple[int | None, int | None]:
        s = self.samples[idx]
        return s.height, s.width

    def target_for(self, sample: Sample) -> dict:
        boxes = torch.tensor([b[1:] for b in sample.boxes], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.index[b[0]] for b in sample.boxes], dtype=torch.int64)
        return {"boxes": boxes, "labels": labels, "image_id": sample.image_id}

    def __getitem__(self, idx: int):
        sample = self.samples[idx]
        image = open_image(sample.path)
        target = self.target_for(sample)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate(batch):
    return tuple(zip(*batch))
