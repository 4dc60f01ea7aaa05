"""``(image, target)`` transforms that move boxes with pixels (references/detection style).

They work on PIL images until ``ToTensor``; ``target["boxes"]`` is a float tensor (N, 4)
of pixel xyxy and ``target["labels"]`` an int64 tensor (N,).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import ColorJitter as _PixelColorJitter
from torchvision.transforms import functional as TF


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def _scaled(
    image: Image.Image, target: dict, scale_x: float, scale_y: float, size: tuple[int, int]
):
    image = image.resize(size, Image.Resampling.BILINEAR)
    if len(target["boxes"]):
        target = dict(target)
        target["boxes"] = target["boxes"] * torch.tensor([scale_x, scale_y, scale_x, scale_y])
    return image, target


@dataclass
class ResizeLongest:
    """Scale so the longer side is ``size`` (keeps the aspect ratio)."""

    size: int

    def __call__(self, image, target):
        w, h = image.size
        s = self.size / max(w, h)
        if s == 1.0:
            return image, target
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        return _scaled(image, target, nw / w, nh / h, (nw, nh))


@dataclass
class ScaleJitter:
    """Random rescale by a factor in ``[low, high]`` (after ``ResizeLongest``)."""

    low: float = 0.75
    high: float = 1.25

    def __call__(self, image, target):
        s = random.uniform(self.low, self.high)
        w, h = image.size
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        return _scaled(image, target, nw / w, nh / h, (nw, nh))


@dataclass
class RandomHorizontalFlip:
    p: float = 0.5

    def __call__(self, image, target):
        if random.random() >= self.p:
            return image, target
        image = TF.hflip(image)
        if len(target["boxes"]):
            target = dict(target)
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = image.width - target["boxes"][:, [2, 0]]
            target["boxes"] = boxes
        return image, target


class ColorJitter:
    """Brightness, contrast, saturation and hue; boxes do not move."""

    def __init__(self, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02):
        self.jitter = _PixelColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, image, target):
        return self.jitter(image), target

    def __repr__(self) -> str:
        return repr(self.jitter)


class ToTensor:
    def __call__(self, image, target):
        return TF.to_tensor(image), target


@dataclass
class AugmentConfig:
    """Which augmentations train with; evaluation only resizes."""

    hflip: float = 0.5
    scale_jitter: tuple[float, float] | None = (0.75, 1.25)
    color: bool = True


def make_transforms(image_size: int, train: bool, augment: AugmentConfig | None = None) -> Compose:
    steps: list = [ResizeLongest(image_size)]
    if train:
        augment = augment or AugmentConfig()
        if augment.scale_jitter:
            steps.append(ScaleJitter(*augment.scale_jitter))
        if augment.hflip > 0:
            steps.append(RandomHorizontalFlip(augment.hflip))
        if augment.color:
            steps.append(ColorJitter())
    steps.append(ToTensor())
    return Compose(steps)
