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


def positive_class(positive: list[str]) -> str:
    """The binary task's one positive class: ``--positive a,b`` trains ``a+b`` vs
    ``other`` (the study's "wildlife product vs non-wildlife"), not three classes."""
    return "+".join(positive)


def class_names(config: ClassifyConfig, taxonomy: Taxonomy) -> list[str]:
    if config.positive:
        return [positive_class(config.positive), NEGATIVE]
    return taxonomy.classes(config.level)


def _is_positive(label: str, positive: list[str], taxonomy: Taxonomy) -> bool:
    """Whether an image label falls under one of the ``--positive`` classes: a species
    name takes in all its categories, a category only itself."""
    for p in positive:
        if p in taxonomy.species_names:
            if taxonomy.to_level(label, "species", unknown="keep") == p:
                return True
        elif taxonomy.to_level(label, "category", unknown="keep") == p:
            return True
    return False


def target_of(label: str, config: ClassifyConfig, taxonomy: Taxonomy) -> str | None:
    """The class an image label trains as, or None when it does not take part."""
    if label == BACKGROUND:
        return NEGATIVE if (config.positive and config.negatives) else None
    if config.positive:
        return (
            positive_class(config.positive)
            if _is_positive(label, config.positive, taxonomy)
            else NEGATIVE
        )
    return taxonomy.to_level(label, config.level, unknown="keep")


def class_members(
    classes: list[str], config: ClassifyConfig, taxonomy: Taxonomy
) -> dict[str, list[str]]:
    """What each class of a classifier claims, in taxonomy labels: a level class itself,
    the binary positive class its ``--positive`` labels, ``other`` nothing (it says only
    "none of those")."""
    if config.positive:
        return {c: (list(config.positive) if c != NEGATIVE else []) for c in classes}
    return {c: [c] for c in classes}


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
        if folder.name in classes and not taxonomy.is_known(folder.name):
            target = folder.name  # `other`, or the merged positive class `a+b`
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


def image_tensor(img, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """An RGB PIL image as the network's normalised (3, size, size) input."""
    from torchvision.transforms.functional import pil_to_tensor, resize

    x = resize(pil_to_tensor(img), [size, size], antialias=True).float() / 255
    return (x - mean) / std


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
        item = self.items[i]
        try:
            img = open_image(item.path)
        except UnreadableImage:
            self.unreadable.append(item.path)
            img = None
        if img is None:
            x = (torch.zeros(3, self.size, self.size) - self.mean) / self.std
        else:
            img = crop_margin(img, self.augment.get(item.label, 0.0))
            x = image_tensor(img, self.size, self.mean, self.std)
        return x, self.index[item.label]
