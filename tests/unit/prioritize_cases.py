"""Test data for `wb prioritize`: small drawn images whose brightness IS the model's
confidence, a "model" that reads it back, and a registered, promoted version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from workbench.catalog.records import Box, ImageRecord
from workbench.detection.predict import Detection

VERSION = "v001"
CLASSES = ["elephant", "pangolin", "tiger", "non_wildlife"]  # the default taxonomy's species


def draw(path: Path, brightness: int, colour=(0, 0)) -> Path:
    """A 48x32 image: a box region at ``brightness`` (the model's confidence x 255)."""
    img = Image.new("RGB", (48, 32), (colour[0], colour[1], 40))
    img.paste((brightness, brightness, brightness), (8, 6, 30, 26))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


class BrightnessModel:
    """One box per image at (8, 6, 30, 26): class ``elephant`` with p = brightness / 255,
    the rest split between ``tiger`` and background. Features: the mean colour."""

    version = VERSION
    classes = CLASSES

    def __init__(self):
        self.predicted: list[int] = []  # images seen by predict (count per call)
        self.featurised = 0

    def predict(self, images):
        self.predicted.append(len(images))
        out = []
        for img in images:
            p = float(np.asarray(img)[16, 18, 0]) / 255.0
            rest = 1.0 - p
            probs = {
                "background": rest / 2,
                "elephant": p,
                "pangolin": 0.0,
                "tiger": rest / 2,
                "non_wildlife": 0.0,
            }
            out.append([Detection("elephant", 8.0, 6.0, 30.0, 26.0, p, probs)])
        return out

    def features(self, images):
        self.featurised += len(images)
        return np.stack([np.asarray(img, dtype=np.float32).mean(axis=(0, 1)) for img in images])


def add_image(
    catalog,
    path: Path,
    label: str | None = "elephant_ivory",
    annotated: bool = False,
    status: str = "active",
) -> int:
    from workbench.images import sha256_file

    return catalog.add_image(
        ImageRecord(
            id=None,
            path=str(path.resolve()),
            width=48,
            height=32,
            label=label,
            status=status,
            sha256=sha256_file(path),
        ),
        boxes=[Box("elephant", 8, 6, 30, 26)] if annotated else None,
    )


def register_model(
    ws, catalog, version: str = VERSION, level: str = "species", promote: bool = True
) -> None:
    """A catalog row for the version (and its folder), as the registry writes it."""
    (ws.models_dir / version).mkdir(parents=True, exist_ok=True)
    catalog.add_model(version, None, level, CLASSES, {}, {"train": {"backbone": "mobilenet_v3"}})
    if promote:
        catalog.promote_model(version)


def confident_and_unsure(tmp_path: Path, catalog) -> dict[str, int]:
    """Four unannotated images from sure (0.95) to unsure (0.4), one annotated, one
    excluded; returns name -> image id."""
    ids = {}
    for name, level in (("sure", 242), ("fair", 190), ("unsure", 102), ("middling", 150)):
        ids[name] = add_image(catalog, draw(tmp_path / "img" / f"{name}.png", level))
    ids["annotated"] = add_image(
        catalog, draw(tmp_path / "img" / "annotated.png", 20), annotated=True
    )
    ids["excluded"] = add_image(
        catalog, draw(tmp_path / "img" / "excluded.png", 10), status="excluded"
    )
    return ids
