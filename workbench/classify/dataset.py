"""Which images a classifier learns from, and their class: the catalog's image labels
at a taxonomy level, or binary (``positive`` classes vs the rest). Splits are the
catalog's sticky ones (``detection.splits.deal_splits``), dealt to labelled images that
have none yet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..detection.splits import deal_splits
from ..errors import WorkbenchError
from ..images import UnreadableImage, is_image_file, open_image
from ..taxonomy import BACKGROUND, Taxonomy
from .config import ClassifyConfig

NEGATIVE = "other"  # the binary task's negative class


@dataclass(frozen=True)
class LabelledImage:
    image_id: int | None
    path: str
    label: str
    split: str | None = None


def class_names(config: ClassifyConfig, taxonomy: Taxonomy) -> list[str]:
    if config.positive:
        return (
            [*config.positive, NEGATIVE]
            if len(config.positive) > 1
            else [
                config.positive[0],
                NEGATIVE,
            ]
        )
    return taxonomy.classes(config.level)


def target_of(label: str, config: ClassifyConfig, taxonomy: Taxonomy) -> str | None:
    """The class an image label trains as, or None when it does not take part."""
    if label == BACKGROUND:
        return NEGATIVE if (config.positive and config.negatives) else None
    mapped = taxonomy.to_level(label, config.level, unknown="keep")
    if config.positive:
        wanted = {taxonomy.to_level(p, config.level, unknown="keep") for p in config.positive}
        return mapped if mapped in wanted else NEGATIVE
    return mapped


def catalog_images(catalog, taxonomy: Taxonomy, config: ClassifyConfig) -> list[LabelledImage]:
    """Active labelled images with their class and (sticky) split; checks that every
    class has training images and that there are at least two classes."""
    if config.positive:
        for p in config.positive:
            taxonomy.check(p)
    rows = [im for im in catalog.images(status="active") if im.label]
    targets = {im.id: target_of(im.label, config, taxonomy) for im in rows}
    rows = [im for im in rows if targets[im.id] is not None]
    new = deal_splits({im.id: targets[im.id] for im in rows}, {im.id: im.split for im in rows})
    if new:
        catalog.set_splits(new)
    items = [LabelledImage(im.id, im.path, targets[im.id], new.get(im.id, im.split)) for im in rows]
    names = class_names(config, taxonomy)
    present = {i.label for i in items if i.split == "train"}
    missing = [c for c in names if c not in present]
    if len(present) < 2:
        raise WorkbenchError(
            f"a classifier needs images of at least two classes; the catalog's training "
            f"split has {sorted(present) or 'none'}. Ingest labelled folders "
            "(`wb ingest PHOTOS --format folders`) or pass `--positive CLASS`."
        )
    if missing:
        raise WorkbenchError(
            f"no training images for class(es) {', '.join(missing)} at level "
            f"'{config.level}': ingest some, or choose a binary task with `--positive`"
        )
    return items


def folder_images(
    root: Path, classes: list[str], taxonomy: Taxonomy, config
) -> list[LabelledImage]:
    """A test set on disk: one folder per class (names as the taxonomy knows them)."""
    root = Path(root)
    if not root.is_dir():
        raise WorkbenchError(f"test set {root}: no such folder (one sub-folder per class)")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    items, unknown = [], []
    for folder in folders:
        if folder.name == NEGATIVE and NEGATIVE in classes:
            target = NEGATIVE
        elif taxonomy.is_known(folder.name) or folder.name == BACKGROUND:
            target = target_of(taxonomy.canonical(folder.name) or folder.name, config, taxonomy)
        else:
            target = None
        if target is None or target not in classes:
            unknown.append(folder.name)
            continue
        for f in sorted(folder.iterdir()):
            if is_image_file(f):
                items.append(LabelledImage(None, str(f), target))
    if unknown:
        raise WorkbenchError(
            f"test set {root}: class folder(s) {', '.join(unknown)} are not classes of "
            f"this model ({', '.join(classes)}); rename or remove them"
        )
    if not items:
        raise WorkbenchError(f"test set {root}: no images in its class folders")
    return items


def crop_margin(image, margin: float):
    """Cut ``margin`` (a fraction of each side) off the image's borders."""
    if margin <= 0:
        return image
    w, h = image.size
    dx, dy = int(w * margin), int(h * margin)
    return image.crop((dx, dy, w - dx, h - dy))


class ClassifierDataset(Dataset):
    def __init__(self, items, classes, image_size, mean, std, augment=None):
        self.items = list(items)
        self.index = {c: i for i, c in enumerate(classes)}
        self.size = image_size
        self.mean, self.std = mean, std
        self.augment = augment or {}
        self.unreadable: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from torchvision.transforms.functional import pil_to_tensor, resize

        item = self.items[i]
        try:
            img = open_image(item.path)
        except UnreadableImage:
            self.unreadable.append(item.path)
            img = None
        if img is None:
            x = torch.zeros(3, self.size, self.size)
        else:
            img = crop_margin(img, self.augment.get(item.label, 0.0))
            x = resize(pil_to_tensor(img), [self.size, self.size], antialias=True).float() / 255
        return (x - self.mean) / self.std, self.index[item.label]
