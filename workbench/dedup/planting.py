"""Planted duplicates: marketplace-style copies of real photos, for tests and benchmarks.

``plant_copies`` writes a folder-per-class tree (``out_dir/<class>/<name>.jpg``):
every source photo once under ``home_class``, plus copies of the kinds in
``COPY_KINDS``; some copies go under ``other_class`` to make cross-class
conflicts. ``out_dir/planted.json`` lists what was planted, so a run of
``wb dedup`` can be scored against it. Source files are only read.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from ..images import UnreadableImage, open_image

COPY_KINDS = ("resized", "reencoded", "cropped", "brightened", "grayscale", "banner", "mirrored")
# Harder copies that move a perceptual hash far (what `--method cnn` is for).
HARD_KINDS = ("crop15", "reframed", "rotated")


@dataclass
class PlantedCopy:
    original: str  # path of the source photo as written under out_dir
    copy: str  # path of the planted copy
    kind: str
    conflict: bool  # the copy sits under a different class than its original


@dataclass
class PlantedSet:
    root: str
    originals: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # sources copied as they are
    copies: list[PlantedCopy] = field(default_factory=list)

    def source_of(self) -> dict[str, str]:
        """Every written path -> the path of the original it was made from."""
        out = {p: p for p in self.originals}
        out.update({c.copy: c.original for c in self.copies})
        return out

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "originals": self.originals,
            "unreadable": self.unreadable,
            "copies": [asdict(c) for c in self.copies],
        }


def make_copy(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """One marketplace-style copy of ``img`` (RGB). JPEG quality is chosen when saving."""
    w, h = img.size
    if kind == "resized":
        f = rng.uniform(0.4, 0.7)
        return img.resize((max(8, round(w * f)), max(8, round(h * f))), Image.LANCZOS)
    if kind == "reencoded":
        return img.copy()  # the low JPEG quality at save time is the change
    if kind == "cropped":
        # 2-6 % off each of two or more sides: what a seller's re-framing does.
        left, top, right, bottom = (rng.uniform(0.0, 0.06) for _ in range(4))
        box = (round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom)))
        return img.crop(box)
    if kind == "brightened":
        return ImageEnhance.Brightness(img).enhance(rng.uniform(1.25, 1.5))
    if kind == "grayscale":
        return ImageOps.grayscale(img).convert("RGB")
    if kind == "banner":
        out = img.copy()
        draw = ImageDraw.Draw(out)
        band = max(10, round(h * rng.uniform(0.08, 0.14)))
        y0 = 0 if rng.random() < 0.3 else h - band
        draw.rectangle((0, y0, w, y0 + band), fill=(255, 255, 255))
        text = rng.choice(
            [
                "SALE 50% OFF",
                "www.best-deals.example",
                "WhatsApp +00 123 456",
                "genuine! free shipping",
            ]
        )
        draw.text(
            (max(2, w // 30), y0 + band // 4), text, fill=(200, 0, 0), font_size=max(8, band // 2)
        )
        return out
    if kind == "mirrored":
        return ImageOps.mirror(img)
    if kind == "crop15":
        # 10-20 % off every side
        left, top, right, bottom = (rng.uniform(0.10, 0.20) for _ in range(4))
        box = (round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom)))
        return img.crop(box)
    if kind == "reframed":
        # heavy re-framing: keep 65-80 % of each side, placed off-centre
        fw, fh = rng.uniform(0.65, 0.80), rng.uniform(0.65, 0.80)
        x0, y0 = rng.uniform(0, 1 - fw), rng.uniform(0, 1 - fh)
        box = (round(w * x0), round(h * y0), round(w * (x0 + fw)), round(h * (y0 + fh)))
        return img.crop(box)
    if kind == "rotated":
        # a small tilt (3-8 degrees either way), corners filled white as a seller's tool does
        angle = rng.uniform(3, 8) * rng.choice((-1, 1))
        return img.rotate(angle, resample=Image.BICUBIC, fillcolor=(255, 255, 255))
    raise ValueError(f"unknown copy kind {kind!r}; valid: {', '.join(COPY_KINDS + HARD_KINDS)}")


def plant_copies(
    sources: Iterable[Path],
    out_dir: Path,
    kinds: Iterable[str] = COPY_KINDS,
    copies_per_source: int | None = None,
    conflict_every: int = 5,
    home_class: str = "kangaroo",
    other_class: str = "wallaby",
    seed: int = 0,
) -> PlantedSet:
    """Write originals and planted copies under ``out_dir``; return what was planted.

    With ``copies_per_source=None`` every source gets one copy of every kind; with a
    number N, source i gets N kinds taken round-robin, so kinds stay balanced.
    Every ``conflict_every``-th copy is filed under ``other_class`` (0: never).
    """
    rng = random.Random(seed)
    kinds = list(kinds)
    out_dir = Path(out_dir)
    planted = PlantedSet(root=str(out_dir.resolve()))
    for cls in (home_class, other_class):
        (out_dir / cls).mkdir(parents=True, exist_ok=True)
    n_copy = 0
    for i, src in enumerate(sorted(Path(s) for s in sources)):
        orig = (out_dir / home_class / f"{src.stem}.jpg").resolve()
        try:
            img = open_image(src)
        except UnreadableImage:
            # Real sets hold broken files too: keep the bytes so `wb dedup` meets one.
            shutil.copyfile(src, orig)
            planted.unreadable.append(str(orig))
            continue
        img.save(orig, quality=92)
        planted.originals.append(str(orig))
        if copies_per_source is None:
            chosen = kinds
        else:
            chosen = [
                kinds[(i * copies_per_source + k) % len(kinds)] for k in range(copies_per_source)
            ]
        for kind in chosen:
            n_copy += 1
            conflict = bool(conflict_every) and n_copy % conflict_every == 0
            cls = other_class if conflict else home_class
            dest = (out_dir / cls / f"{src.stem}_{kind}.jpg").resolve()
            quality = rng.randint(30, 50) if kind == "reencoded" else rng.randint(75, 92)
            make_copy(img, kind, rng).save(dest, quality=quality)
            planted.copies.append(PlantedCopy(str(orig), str(dest), kind, conflict))
    (out_dir / "planted.json").write_text(json.dumps(planted.to_json(), indent=2))
    return planted
