"""The built-in demo data set: procedurally drawn product photos with exact boxes.

``generate_demo_data(out_dir)`` writes, with no download and the same bytes for the
same seed:

- ``images/<label>/<name>.jpg``: folder-per-class; a label is a category of the
  default taxonomy, or ``background`` for images with no object;
- ``annotations.json``: COCO detection JSON (``file_name`` relative to ``out_dir``,
  one extra ``"label"`` key per image, categories = taxonomy categories, ids 1..N);
- ``planted.json``: the duplicates and cross-class conflicts planted on purpose,
  so that ``wb dedup`` can be checked against a known answer.

Every object is drawn into its own mask, so boxes stay exact through occlusion,
collages, mirroring, crops, resizing and pasted banners. Species differ by strong
cues (colour family, surface pattern) so a small detector learns them from scratch on
CPU; categories within a species differ by shape and shade. Look-alikes
(``non_wildlife``) borrow every shape but are glossy, saturated, uniform plastic/resin.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from .errors import WorkbenchError, check_choice
from .taxonomy import BACKGROUND, Taxonomy

log = logging.getLogger(__name__)

NEAR_DUPLICATE_KINDS = (
    "resized",
    "reencoded",
    "brightened",
    "grayscale",
    "banner",
    "mirrored",
    "crop",
)
JPEG_QUALITY = 90
MAX_TILT = 30.0  # degrees an object is turned from level
MIN_VISIBLE_PIXELS = 40  # an object cut down below this (crop, banner) loses its box


# ---------------------------------------------------------------------------
# The look of each category (data). Species share a colour family and a surface
# pattern; categories within a species differ by shape and shade.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectStyle:
    shapes: tuple[str, ...]  # drawn outlines, see _SHAPES
    colour: tuple[int, int, int]  # base RGB
    pattern: str  # surface: grain, crackle, ridges, rings, stripes, mottle, gloss
    length: tuple[int, int] = (45, 110)  # long side in pixels on a 320x240 image


STYLES: dict[str, ObjectStyle] = {
    # elephant: pale cream/grey, fine grain
    "elephant_ivory": ObjectStyle(("tusk",), (238, 228, 196), "grain", (70, 120)),
    "elephant_antique_ivory": ObjectStyle(("figurine",), (214, 182, 118), "crackle", (55, 105)),
    "elephant_skin": ObjectStyle(("blob",), (128, 124, 120), "crackle", (55, 110)),
    "elephant_mammoth_ambiguous": ObjectStyle(("tusk",), (178, 160, 138), "mottle", (70, 120)),
    # pangolin: brown, parallel ridges
    "pangolin_raw_scale": ObjectStyle(("scale",), (168, 124, 72), "ridges", (45, 85)),
    "pangolin_parched_scale": ObjectStyle(("scale",), (98, 64, 34), "ridges", (45, 85)),
    "pangolin_crafted_scale": ObjectStyle(("disc",), (150, 92, 40), "rings", (45, 85)),
    "pangolin_claw": ObjectStyle(("claw",), (110, 80, 50), "ridges", (55, 100)),
    # tiger: orange with black stripes
    "tiger_claw": ObjectStyle(("claw",), (226, 132, 36), "stripes", (50, 95)),
    "tiger_fang_ambiguous": ObjectStyle(("fang",), (236, 176, 96), "stripes", (50, 95)),
    "tiger_bone_ambiguous": ObjectStyle(("bone",), (220, 150, 80), "stripes", (55, 110)),
    "tiger_other": ObjectStyle(("pelt",), (232, 120, 24), "stripes", (55, 115)),
    # look-alikes: every shape, saturated glossy plastic or uniform resin
    "non_wildlife": ObjectStyle(
        ("tusk", "figurine", "blob", "scale", "disc", "claw", "fang", "bone"),
        (40, 90, 220),
        "gloss",
        (50, 115),
    ),
}
_PLASTIC_COLOURS = (
    (220, 30, 40),
    (30, 80, 230),
    (20, 170, 60),
    (150, 40, 200),
    (250, 60, 160),
    (20, 190, 200),
    (250, 210, 20),
)
_ALL_SHAPES = ("tusk", "figurine", "blob", "scale", "disc", "claw", "fang", "bone", "pelt")
_PATTERNS = ("grain", "crackle", "ridges", "rings", "stripes", "mottle")


def style_for(category: str) -> ObjectStyle:
    """The drawing style of a category; unknown categories get a stable made-up one."""
    if category in STYLES:
        return STYLES[category]
    h = hashlib.sha256(category.encode()).digest()
    return ObjectStyle(
        (_ALL_SHAPES[h[0] % len(_ALL_SHAPES)],),
        (h[1], h[2], h[3]),
        _PATTERNS[h[4] % len(_PATTERNS)],
    )


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------
@dataclass
class DemoDataSummary:
    out_dir: Path
    n_images: int
    n_boxes: int
    by_label: dict[str, int] = field(default_factory=dict)
    n_planted_exact: int = 0
    n_planted_near: int = 0
    n_conflicts: int = 0


@dataclass
class _Photo:
    """A rendered picture: RGB pixels and one boolean mask per object (visible pixels)."""

    pixels: Image.Image
    objects: list[tuple[str, np.ndarray]]  # (category, HxW bool mask)

    def boxes(self) -> list[tuple[str, list[int]]]:
        out = []
        for cat, mask in self.objects:
            if mask.sum() < MIN_VISIBLE_PIXELS:
                continue
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            out.append((cat, [x0, y0, x1 - x0, y1 - y0]))
        return out


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------
def _jitter(rng: np.random.Generator, rgb, amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A marketplace-photo surface: wood, cloth, gradient or plain table, plus noise."""
    w, h = size
    kind = rng.choice(["wood", "cloth", "gradient", "plain", "marble"])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.array(_jitter(rng, (150, 150, 150), 60), dtype=np.float32)
    if kind == "wood":
        base = np.array(_jitter(rng, (120, 95, 70), 25), dtype=np.float32)
        f = rng.uniform(0.05, 0.15)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        v = (
            np.sin(yy * f + p1 + rng.uniform(1, 4) * np.sin(xx * rng.uniform(0.01, 0.03) + p2))
            * 0.5
            + 0.5
        )
        img = base[None, None, :] * (0.75 + 0.35 * v[..., None])
    elif kind == "cloth":
        base = np.array(_jitter(rng, (120, 130, 140), 50), dtype=np.float32)
        p = int(rng.integers(3, 6))
        weave = ((xx.astype(int) // p + yy.astype(int) // p) % 2).astype(np.float32)
        img = base[None, None, :] * (0.88 + 0.12 * weave[..., None])
    elif kind == "gradient":
        other = np.array(_jitter(rng, (150, 150, 150), 80), dtype=np.float32)
        t = xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        img = base[None, None, :] * (1 - t[..., None]) + other[None, None, :] * t[..., None]
    elif kind == "marble":
        # random frequencies and phases: a fixed pattern would make every marble photo a
        # perceptual-hash twin of every other (phash sees structure, not hue)
        a, b, c, d = rng.uniform(0.01, 0.06, 4)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        v = np.sin(xx * a + yy * b + p1 + 4 * np.sin(yy * c + p2) * np.cos(xx * d))
        img = base[None, None, :] * (0.85 + 0.15 * v[..., None])
    else:
        # a plain table still has soft, random shading
        a, b = rng.uniform(0.005, 0.03, 2)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        v = np.sin(xx * a + p1) * np.cos(yy * b + p2)
        img = base[None, None, :] * (0.9 + 0.1 * v[..., None])
    # uneven lighting and sensor noise
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    light = 1.1 - 0.25 * np.hypot(xx - cx, yy - cy) / np.hypot(w, h)
    img = img * light[..., None] + rng.normal(0, 5, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _outline(
    shape: str, L: int, W: int, rng: np.random.Generator
) -> list[list[tuple[float, float]]]:
    """Polygons (in an L x W box, long side horizontal) that make up a shape."""
    t = np.linspace(0, 1, 24)
    if shape in ("tusk", "claw", "fang"):
        bend = {"tusk": 0.35, "claw": 0.7, "fang": 0.15}[shape] * W * rng.uniform(0.7, 1.2)
        base_w = {"tusk": 0.42, "claw": 0.55, "fang": 0.75}[shape] * W
        cy = W * 0.5 + bend * (t**2) - bend * 0.5
        half = base_w / 2 * (1 - t) ** (0.6 if shape != "fang" else 1.0) + 0.5
        x = t * (L - 2) + 1
        upper = list(zip(x, cy - half))
        lower = list(zip(x[::-1], (cy + half)[::-1]))
        return [upper + lower]
    if shape == "figurine":  # a carved statuette: body, head, base
        return [
            [
                (L * 0.10, W * 0.25),
                (L * 0.62, W * 0.15),
                (L * 0.62, W * 0.85),
                (L * 0.10, W * 0.75),
            ],
            _ellipse(L * 0.62, W * 0.2, L * 0.95, W * 0.8),
            [(1, W * 0.1), (L * 0.12, W * 0.1), (L * 0.12, W * 0.9), (1, W * 0.9)],
        ]
    if shape == "blob":
        a = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        r = 1 + 0.18 * rng.standard_normal(20)
        r = np.clip(r, 0.7, 1.2) / 1.2
        return [list(zip(L / 2 + (L / 2 - 1) * r * np.cos(a), W / 2 + (W / 2 - 1) * r * np.sin(a)))]
    if shape == "scale":  # a shield: round end, pointed end
        a = np.linspace(-np.pi / 2, np.pi / 2, 16)
        arc = list(zip(L * 0.45 + L * 0.53 * np.cos(a), W / 2 + (W / 2 - 1) * np.sin(a)))
        return [[(1.0, W / 2)] + arc]
    if shape == "disc":
        return [_ellipse(1, 1, L - 1, W - 1)]
    if shape == "bone":
        r = W * 0.28
        return [
            [(r, W * 0.36), (L - r, W * 0.36), (L - r, W * 0.64), (r, W * 0.64)],
            _ellipse(1, 1, 2 * r, W * 0.5),
            _ellipse(1, W * 0.5, 2 * r, W - 1),
            _ellipse(L - 2 * r, 1, L - 1, W * 0.5),
            _ellipse(L - 2 * r, W * 0.5, L - 1, W - 1),
        ]
    # pelt: a rough rectangle
    return [
        [
            (1 + rng.uniform(0, 4), 1 + rng.uniform(0, 4)),
            (L - 1 - rng.uniform(0, 4), 1),
            (L - 1, W - 1 - rng.uniform(0, 4)),
            (1, W - 1),
        ]
    ]


def _ellipse(x0, y0, x1, y1, n: int = 20) -> list[tuple[float, float]]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return list(zip(cx + rx * np.cos(a), cy + ry * np.sin(a)))


_ASPECT = {
    "tusk": (0.3, 0.38),
    "claw": (0.4, 0.55),
    "fang": (0.38, 0.5),
    "figurine": (0.5, 0.62),
    "blob": (0.6, 0.9),
    "scale": (0.7, 0.9),
    "disc": (0.85, 1.0),
    "bone": (0.34, 0.42),
    "pelt": (0.55, 0.8),
}


def _surface(pattern: str, colour, L: int, W: int, rng: np.random.Generator) -> np.ndarray:
    """The object's texture as an L x W RGB float array (before the outline mask)."""
    yy, xx = np.mgrid[0:W, 0:L].astype(np.float32)
    c = np.array(colour, dtype=np.float32)[None, None, :]
    shade = 1.0 + 0.18 * (0.5 - yy / max(W, 1))  # lit from above
    img = c * shade[..., None]
    if pattern == "grain":
        img *= (0.94 + 0.06 * np.sin(yy * 1.3 + xx * 0.08))[..., None]
    elif pattern == "crackle":
        cells = np.sin(xx * 0.45 + 2 * np.sin(yy * 0.3)) * np.sin(yy * 0.5 + 2 * np.sin(xx * 0.25))
        img *= np.where(np.abs(cells) < 0.08, 0.6, 1.0)[..., None]
    elif pattern == "ridges":
        img *= (0.78 + 0.22 * (np.sin(xx * 0.9) > 0))[..., None]
    elif pattern == "rings":
        r = np.hypot(xx - L / 2, yy - W / 2)
        img *= (0.75 + 0.25 * (np.sin(r * 1.1) > 0))[..., None]
    elif pattern == "stripes":
        period = rng.uniform(7, 11)
        s = np.sin((xx + 0.4 * yy + 3 * np.sin(yy * 0.2)) * 2 * np.pi / period)
        img = np.where(
            (s > 0.45)[..., None], np.array([25, 18, 12], np.float32)[None, None, :], img
        )
    elif pattern == "mottle":
        blotch = np.sin(xx * 0.21 + rng.uniform(0, 6)) * np.cos(yy * 0.27 + rng.uniform(0, 6))
        img = img + (blotch[..., None] * np.array([-18, -8, 20], np.float32)[None, None, :])
    elif pattern == "gloss":  # saturated plastic with a specular highlight
        hx, hy = L * rng.uniform(0.3, 0.6), W * 0.3
        spec = np.exp(-(((xx - hx) / (0.2 * L)) ** 2 + ((yy - hy) / (0.15 * W + 1)) ** 2))
        img = img * (0.85 + 0.3 * (1 - yy / max(W, 1)))[..., None] * 0.9
        img = img + 255 * spec[..., None] * 0.8
    return img


def _draw_object(
    category: str, canvas: Image.Image, occupied: np.ndarray, rng: np.random.Generator, scale: float
) -> np.ndarray | None:
    """Draw one object of ``category`` at a free place; return its mask or None."""
    style = style_for(category)
    shape = style.shapes[int(rng.integers(len(style.shapes)))]
    colour = _jitter(rng, style.colour, 10)
    if style.pattern == "gloss":
        colour = _jitter(rng, _PLASTIC_COLOURS[int(rng.integers(len(_PLASTIC_COLOURS)))], 20)
    lo, hi = style.length
    L = max(12, int(rng.uniform(lo, hi) * scale))
    W = max(8, int(L * rng.uniform(*_ASPECT.get(shape, (0.4, 0.7)))))

    shape_mask = Image.new("L", (L, W), 0)
    draw = ImageDraw.Draw(shape_mask)
    for poly in _outline(shape, L, W, rng):
        draw.polygon([(float(x), float(y)) for x, y in poly], fill=255)
    texture = _surface(style.pattern, colour, L, W, rng)
    # a darker rim gives the object an edge against any background
    inner = np.asarray(shape_mask.filter(ImageFilter.MinFilter(3))) > 0
    texture = np.where(inner[..., None], texture, texture * 0.55)
    rgba = Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    rgba.putalpha(shape_mask)
    # products are laid out roughly level, as sellers photograph them
    angle = float(rng.choice([0.0, 180.0]) + rng.uniform(-MAX_TILT, MAX_TILT))
    rgba = rgba.rotate(angle, resample=Image.Resampling.NEAREST, expand=True)

    cw, ch = canvas.size
    ow, oh = rgba.size
    if ow >= cw or oh >= ch:
        rgba = rgba.resize(
            (max(4, min(ow, cw - 2)), max(4, min(oh, ch - 2))), Image.Resampling.NEAREST
        )
        ow, oh = rgba.size
    alpha = np.asarray(rgba.getchannel("A")) > 127
    for _ in range(30):  # find a place that barely overlaps other objects
        x, y = int(rng.integers(0, cw - ow + 1)), int(rng.integers(0, ch - oh + 1))
        overlap = (occupied[y : y + oh, x : x + ow] & alpha).sum()
        if overlap <= 0.1 * alpha.sum():
            break
    else:
        return None
    # soft drop shadow first, then the object
    shadow = Image.new("L", (cw, ch), 0)
    shadow.paste(Image.fromarray((alpha * 90).astype(np.uint8)), (x + 3, y + 3))
    shadow = shadow.filter(ImageFilter.GaussianBlur(2))
    canvas.paste(Image.new("RGB", (cw, ch), (0, 0, 0)), (0, 0), shadow)
    canvas.paste(rgba.convert("RGB"), (x, y), Image.fromarray((alpha * 255).astype(np.uint8)))
    mask = np.zeros((ch, cw), dtype=bool)
    mask[y : y + oh, x : x + ow] = alpha
    return mask


def _price_tag(canvas: Image.Image, occupied: np.ndarray, rng: np.random.Generator) -> None:
    """Clutter that is not an object: a white card with a price (no box)."""
    cw, ch = canvas.size
    w, h = int(rng.integers(30, 50)), int(rng.integers(14, 20))
    for _ in range(10):
        x, y = int(rng.integers(0, cw - w)), int(rng.integers(0, ch - h))
        if not occupied[y : y + h, x : x + w].any():
            d = ImageDraw.Draw(canvas)
            d.rectangle([x, y, x + w, y + h], fill=(245, 245, 240), outline=(60, 60, 60))
            d.text(
                (x + 3, y + 2),
                f"${int(rng.integers(5, 999))}",
                fill=(20, 20, 20),
                font=ImageFont.load_default(),
            )
            return


def _render_scene(
    categories: list[str], size: tuple[int, int], rng: np.random.Generator, scale: float = 1.0
) -> _Photo:
    canvas = _background(rng, size)
    occupied = np.zeros((size[1], size[0]), dtype=bool)
    objects: list[tuple[str, np.ndarray]] = []
    for cat in categories:
        mask = _draw_object(cat, canvas, occupied, rng, scale)
        if mask is None:
            continue
        objects = [(c, m & ~mask) for c, m in objects]  # later objects occlude
        objects.append((cat, mask))
        occupied |= mask
    if rng.random() < 0.3:
        _price_tag(canvas, occupied, rng)
    return _Photo(canvas, objects)


def _render_collage(category: str, size: tuple[int, int], rng: np.random.Generator) -> _Photo:
    """A 2x2 grid of sub-photos (one or two objects each) on a white sheet."""
    w, h = size
    gap = 4
    sw, sh = (w - 3 * gap) // 2, (h - 3 * gap) // 2
    sheet = Image.new("RGB", size, (250, 250, 250))
    objects = []
    for i in range(4):
        n = 1 + int(rng.random() < 0.3)
        sub = _render_scene([category] * n, (sw, sh), rng, scale=0.7)
        x0, y0 = gap + (i % 2) * (sw + gap), gap + (i // 2) * (sh + gap)
        sheet.paste(sub.pixels, (x0, y0))
        for cat, m in sub.objects:
            full = np.zeros((h, w), dtype=bool)
            full[y0 : y0 + sh, x0 : x0 + sw] = m
            objects.append((cat, full))
    return _Photo(sheet, objects)


# ---------------------------------------------------------------------------
# Near-duplicate transforms: each returns the changed photo (masks moved with pixels)
# ---------------------------------------------------------------------------
def _near_duplicate(photo: _Photo, kind: str, rng: np.random.Generator) -> tuple[_Photo, int]:
    """Returns (photo, jpeg quality) for the copy."""
    check_choice("near-duplicate kind", kind, NEAR_DUPLICATE_KINDS)
    img, objs = photo.pixels, photo.objects
    if kind == "resized":
        f = float(rng.uniform(0.6, 0.8))
        size = (round(img.width * f), round(img.height * f))
        out = img.resize(size, Image.Resampling.LANCZOS)
        objs = [
            (c, np.asarray(Image.fromarray(m).resize(size, Image.Resampling.NEAREST)))
            for c, m in objs
        ]
        return _Photo(out, objs), JPEG_QUALITY
    if kind == "reencoded":
        return _Photo(img, objs), int(rng.integers(35, 55))
    if kind == "brightened":
        return _Photo(
            ImageEnhance.Brightness(img).enhance(float(rng.uniform(1.25, 1.4))), objs
        ), JPEG_QUALITY
    if kind == "grayscale":
        return _Photo(ImageOps.grayscale(img).convert("RGB"), objs), JPEG_QUALITY
    if kind == "mirrored":
        return _Photo(ImageOps.mirror(img), [(c, m[:, ::-1].copy()) for c, m in objs]), JPEG_QUALITY
    if kind == "crop":
        f = float(rng.uniform(0.8, 0.9))
        cw, ch = round(img.width * f), round(img.height * f)
        x0, y0 = int(rng.integers(0, img.width - cw + 1)), int(rng.integers(0, img.height - ch + 1))
        out = img.crop((x0, y0, x0 + cw, y0 + ch))
        return _Photo(
            out, [(c, m[y0 : y0 + ch, x0 : x0 + cw].copy()) for c, m in objs]
        ), JPEG_QUALITY
    # banner: a caption strip pasted over the bottom of the photo
    out = img.copy()
    bh = max(12, img.height // 9)
    d = ImageDraw.Draw(out)
    d.rectangle([0, img.height - bh, img.width, img.height], fill=(200, 20, 30))
    d.text(
        (6, img.height - bh + 2),
        "BEST PRICE - WHOLESALE - SHIP WORLDWIDE",
        fill=(255, 255, 255),
        font=ImageFont.load_default(),
    )
    keep = np.ones((img.height, img.width), dtype=bool)
    keep[img.height - bh :, :] = False
    return _Photo(out, [(c, m & keep) for c, m in objs]), JPEG_QUALITY


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------
def _plan_counts(n_images: int) -> tuple[int, int, int]:
    """(exact duplicates, near duplicates per kind, conflicts) for a data set size."""
    n_exact = max(1, round(0.03 * n_images))
    per_kind = max(1, round(0.01 * n_images))
    n_conflicts = max(1, round(0.02 * n_images))
    return n_exact, per_kind, n_conflicts


def _plan_originals(
    n: int,
    n_background: int,
    categories: list[str],
    lookalike: str | None,
    rng: np.random.Generator,
) -> list[tuple[str, str]]:
    """(label, layout) for each original picture; layout is scene, collage or background."""
    n_collage = max(1, round(0.08 * n))
    labels = [categories[i % len(categories)] for i in range(n - n_background)]
    plan = [(lab, "scene") for lab in labels] + [(BACKGROUND, "background")] * n_background
    collage_slots = [i for i, (lab, _) in enumerate(plan) if lab not in (BACKGROUND, lookalike)]
    for i in rng.choice(collage_slots, size=min(n_collage, len(collage_slots)), replace=False):
        plan[int(i)] = (plan[int(i)][0], "collage")
    order = rng.permutation(len(plan))
    return [plan[int(i)] for i in order]


def _render_original(
    label: str, layout: str, lookalike: str | None, size: tuple[int, int], rng: np.random.Generator
) -> _Photo:
    if layout == "background":
        return _render_scene([], size, rng)
    if layout == "collage":
        return _render_collage(label, size, rng)
    n = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.3, 0.3, 0.2]))
    cats = [label] * n
    if lookalike and label != lookalike and rng.random() < 0.15:
        cats.append(lookalike)  # a look-alike beside the real product
    return _render_scene(cats, size, rng)


def generate_demo_data(
    out_dir: Path,
    seed: int = 0,
    n_images: int = 300,
    image_size: tuple[int, int] = (320, 240),
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoDataSummary:
    """Write the demo data set to ``out_dir`` and return what was made.

    ``n_images`` counts every file, planted copies included. The same seed gives the
    same bytes. Existing ``images/``, ``annotations.json`` and ``planted.json`` in
    ``out_dir`` are replaced.

    >>> s = generate_demo_data(Path("demo"), n_images=60)   # doctest: +SKIP
    >>> s.by_label["background"], s.n_planted_exact             # doctest: +SKIP
    (6, 2)
    """
    out_dir = Path(out_dir)
    taxonomy = Taxonomy.default()
    categories = taxonomy.categories
    lookalikes = [c for s in taxonomy.species if s.lookalike for c in s.categories]
    lookalike = lookalikes[0] if lookalikes else None
    n_exact, per_kind, n_conflicts = _plan_counts(n_images)
    n_near = per_kind * len(NEAR_DUPLICATE_KINDS)
    if lookalike is None:
        n_conflicts = 0
    n_originals = n_images - n_exact - n_near - n_conflicts
    if n_originals < len(categories) + 2:
        raise WorkbenchError(
            f"n_images={n_images} is too small: need at least "
            f"{len(categories) + 2 + n_exact + n_near + n_conflicts} for one image per class "
            "and the planted copies; ask for more images"
        )

    images_dir = out_dir / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    root = np.random.SeedSequence(seed)
    plan_rng = np.random.default_rng(root.spawn(1)[0])
    plan = _plan_originals(
        n_originals, max(1, round(0.10 * n_images)), categories, lookalike, plan_rng
    )
    image_rngs = [np.random.default_rng(s) for s in root.spawn(n_images)]

    coco_images: list[dict] = []
    coco_annotations: list[dict] = []
    cat_ids = {c: i + 1 for i, c in enumerate(categories)}
    planted: dict[str, list] = {"exact_duplicates": [], "near_duplicates": [], "conflicts": []}
    by_label: dict[str, int] = {}

    def write(label: str, jpeg: bytes, photo: _Photo, box_label: str | None = None) -> str:
        number = len(coco_images) + 1
        rel = f"images/{label}/{number:06d}.jpg"
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)
        coco_images.append(
            {
                "id": number,
                "file_name": rel,
                "width": photo.pixels.width,
                "height": photo.pixels.height,
                "label": label,
            }
        )
        for cat, bbox in photo.boxes():
            cat = box_label or cat
            coco_annotations.append(
                {
                    "id": len(coco_annotations) + 1,
                    "image_id": number,
                    "category_id": cat_ids[cat],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        by_label[label] = by_label.get(label, 0) + 1
        if on_progress:
            on_progress(len(coco_images), n_images)
        return rel

    originals: list[tuple[str, str, bytes, _Photo]] = []  # (label, relpath, jpeg, photo)
    for label, layout in plan:
        rng = image_rngs[len(coco_images)]
        photo = _render_original(label, layout, lookalike, image_size, rng)
        jpeg = _jpeg_bytes(photo.pixels, JPEG_QUALITY)
        originals.append((label, write(label, jpeg, photo), jpeg, photo))

    # Planted copies come from distinct originals with objects (so each pair is unambiguous).
    with_objects = [o for o in originals if o[0] != BACKGROUND and o[3].boxes()]
    donors = plan_rng.permutation(len(with_objects))
    donor_iter = iter(int(i) for i in donors)
    for _ in range(n_exact):
        label, rel, jpeg, photo = with_objects[next(donor_iter)]
        planted["exact_duplicates"].append([rel, write(label, jpeg, photo)])
    for kind in NEAR_DUPLICATE_KINDS:
        for _ in range(per_kind):
            label, rel, _jpeg, photo = with_objects[next(donor_iter)]
            rng = image_rngs[len(coco_images)]
            copy, quality = _near_duplicate(photo, kind, rng)
            planted["near_duplicates"].append(
                [rel, write(label, _jpeg_bytes(copy.pixels, quality), copy), kind]
            )
    used = {rel for pairs in planted.values() for rel, *_ in pairs}
    product = [o for o in with_objects if o[0] != lookalike and o[1] not in used]
    for i in plan_rng.permutation(len(product))[:n_conflicts]:
        label, rel, jpeg, photo = product[int(i)]
        # the same file filed as a look-alike too: an annotator called its objects look-alikes
        planted["conflicts"].append([rel, write(lookalike, jpeg, photo, box_label=lookalike)])

    coco = {
        "info": {"description": "workbench demo data", "seed": seed, "version": 1},
        "images": coco_images,
        "annotations": coco_annotations,
        "categories": [
            {"id": cat_ids[c], "name": c, "supercategory": taxonomy.species_of(c)}
            for c in categories
        ],
    }
    (out_dir / "annotations.json").write_text(json.dumps(coco, indent=1))
    (out_dir / "planted.json").write_text(json.dumps(planted, indent=1))
    log.info(
        "demo data: %d images, %d boxes in %s", len(coco_images), len(coco_annotations), out_dir
    )
    return DemoDataSummary(
        out_dir=out_dir,
        n_images=len(coco_images),
        n_boxes=len(coco_annotations),
        by_label=dict(sorted(by_label.items())),
        n_planted_exact=len(planted["exact_duplicates"]),
        n_planted_near=len(planted["near_duplicates"]),
        n_conflicts=len(planted["conflicts"]),
    )
