"""Second pass: check hash pairs on pixels, so crops are found without false pairs.

Two checks, one verdict per pair (``verify_pairs``):

- **Colour** (every hashed pair, at any distance): a perceptual hash sees grey-level
  structure only, so flat images of different colours (dark blue, magenta, black) sit
  at distance 0. Each image is summarised by its mean colour and whether it is flat
  (grey spread < ``FLAT_STD``). Two flat images match only when their mean colours are
  within ``FLAT_COLOUR_TOLERANCE`` per channel; a flat and a textured image never match.
  Two textured colour images match only when their mean chromaticity (r, g, b divided
  by their sum: brightness drops out, so brightened copies still match), over the whole
  image or over the centre hash's view (banners), is within ``CHROMA_TOLERANCE``. A
  grayscale image (chroma spread < ``GREY_CHROMA``) against a colour one is compared on
  grey levels only: a grayscale copy is a copy (docs/dedup.md).
- **Structure** (grey-zone pairs only): a copy cropped by a few percent lands at hash
  distance 6-16 from its original, where different photos of the same scene also land
  (measured in docs/dedup.md). Both images are shrunk to small grey thumbnails and the
  centre of one is searched in the other over shifts and scales up to ``MAX_SCALE``
  (normalised cross correlation, so brightness and contrast changes do not matter). A
  crop matches at >= 0.94 on the planted set; different shots of one scene at <= 0.84.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps

from ..images import UnreadableImage, open_image
from .hashing import CENTRE_KEEP

log = logging.getLogger(__name__)

DEFAULT_MIN_CORRELATION = 0.90
THUMB = 40  # side of the square grey thumbnail compared
MARGIN = 4  # pixels dropped on each side of the template (its centre is searched)
MAX_SCALE = 1.16  # up to ~14 % cropped away in each direction
SCALES = tuple(float(s) for s in np.round(np.arange(1.0, MAX_SCALE + 1e-9, 0.03), 3))
FLAT_STD = 3.0  # grey-level spread (0-255) under which an image is one flat colour
FLAT_COLOUR_TOLERANCE = 24.0  # per-channel mean difference (0-255) for two flat images
GREY_CHROMA = 4.0  # mean |channel - grey| (0-255) under which an image is grayscale
CHROMA_TOLERANCE = 0.05  # mean chromaticity difference (sum of |r|,|g|,|b| shares)


@dataclass(frozen=True)
class Colour:
    """What the colour check needs of one image (from its 256 px thumbnail)."""

    mean: tuple[float, float, float]  # mean R, G, B, 0-255
    centre_mean: tuple[float, float, float]  # the same over the centre hash's view
    flat: bool  # one colour: grey spread under FLAT_STD
    grey: bool  # grayscale: no chroma

    @classmethod
    def of(cls, rgb: Image.Image) -> Colour:
        px = np.asarray(rgb, np.float32)
        h, w = px.shape[:2]
        dy, dx = round(h * (1 - CENTRE_KEEP) / 2), round(w * (1 - CENTRE_KEEP) / 2)
        centre = px[dy : h - dy or None, dx : w - dx or None].reshape(-1, 3)
        a = px.reshape(-1, 3)
        lum = a.mean(axis=1)
        chroma = float(np.abs(a - lum[:, None]).mean())
        return cls(
            tuple(float(v) for v in a.mean(axis=0)),  # type: ignore[arg-type]
            tuple(float(v) for v in centre.mean(axis=0)),  # type: ignore[arg-type]
            float(lum.std()) < FLAT_STD,
            chroma < GREY_CHROMA,
        )


def _chromaticity(mean: tuple[float, float, float]) -> np.ndarray:
    m = np.asarray(mean)
    return m / (m.sum() + 1e-6)


def same_colour(a: Colour, b: Colour) -> bool:
    """Whether two images can be copies as far as colour goes (rules in the docstring)."""
    if a.flat or b.flat:
        if not (a.flat and b.flat):
            return False
        return max(abs(x - y) for x, y in zip(a.mean, b.mean)) <= FLAT_COLOUR_TOLERANCE
    if a.grey or b.grey:
        return True  # a grayscale copy of a colour photo: grey levels decide
    # Whole image or its centre (a banner pasted along an edge changes the whole mean).
    return any(
        float(np.abs(_chromaticity(x) - _chromaticity(y)).sum()) <= CHROMA_TOLERANCE
        for x, y in ((a.mean, b.mean), (a.centre_mean, b.centre_mean))
    )


class _View:
    """One image prepared for matching: a template and the image at every scale."""

    def __init__(self, grey: Image.Image):
        base = grey.resize((THUMB, THUMB), Image.BILINEAR)
        t = np.asarray(base, np.float32)[MARGIN : THUMB - MARGIN, MARGIN : THUMB - MARGIN]
        t = t - t.mean()
        self.template = t / (np.linalg.norm(t) + 1e-6)
        self.scaled: list[tuple[np.ndarray, np.ndarray]] = []
        n = self.template.size
        for sx in SCALES:
            for sy in SCALES:
                a = np.asarray(
                    grey.resize((round(THUMB * sx), round(THUMB * sy)), Image.BILINEAR), np.float32
                )
                w = sliding_window_view(a, self.template.shape)
                # |w - mean(w)| without materialising the windows: sum(w^2) - n mean^2
                s1, s2 = w.sum(axis=(2, 3)), (w * w).sum(axis=(2, 3))
                norm = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0)) + 1e-6
                self.scaled.append((a, norm))

    def best_match(self, template: np.ndarray) -> float:
        """Highest correlation of ``template`` anywhere in this image, at any scale.

        ``template`` has zero mean, so the window's mean drops out of the numerator."""
        best = -1.0
        for a, norm in self.scaled:
            w = sliding_window_view(a, template.shape)
            score = np.einsum("ijkl,kl->ij", w, template) / norm
            best = max(best, float(score.max()))
        return best


def _thumb(path: str) -> Image.Image:
    img = open_image(path)
    img.thumbnail((256, 256))
    return img


def _grey(path: str) -> Image.Image:
    return ImageOps.grayscale(_thumb(path))


def pixel_similarity(a: Image.Image, b: Image.Image, mirrored: bool = False) -> float:
    """Correlation of the best alignment of two grey images (either may be the crop)."""
    if mirrored:
        b = ImageOps.mirror(b)
    va, vb = _View(a), _View(b)
    return max(va.best_match(vb.template), vb.best_match(va.template))


def verify_pairs(
    pairs: Iterable[tuple[str, str, bool]],
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    on_progress: Callable[[int, int], None] | None = None,
    structure: Iterable[bool] | None = None,
) -> list[float | None]:
    """Pixel score for each ``(path_a, path_b, mirrored)``; ``None`` when a file can no
    longer be read. Each image is decoded once per call.

    Every pair gets the colour check: 0.0 when the colours rule the pair out. Where
    ``structure`` (one flag per pair; default all) is true and the colours agree, the
    score is the grey correlation of the best alignment; otherwise 1.0 (the hash alone
    vouches for the structure). Two flat images of one colour score 1.0: grey
    correlation means nothing without structure."""
    pairs = list(pairs)
    flags = [True] * len(pairs) if structure is None else list(structure)
    colours: dict[str, Colour | None] = {}
    greys: dict[str, Image.Image] = {}
    views: dict[tuple[str, bool], _View] = {}

    def colour(path: str) -> Colour | None:
        if path not in colours:
            try:
                rgb = _thumb(path)
                colours[path] = Colour.of(rgb)
                greys[path] = ImageOps.grayscale(rgb)
            except UnreadableImage as exc:
                log.warning("cannot verify %s: %s", path, exc.reason)
                colours[path] = None
        return colours[path]

    def view(path: str, mirrored: bool) -> _View:
        key = (path, mirrored)
        if key not in views:
            g = greys[path]
            views[key] = _View(ImageOps.mirror(g) if mirrored else g)
        return views[key]

    out: list[float | None] = []
    for done, ((pa, pb, mirrored), check) in enumerate(zip(pairs, flags), 1):
        ca, cb = colour(pa), colour(pb)
        if ca is None or cb is None:
            out.append(None)
        elif not same_colour(ca, cb):
            out.append(0.0)
        elif not check or (ca.flat and cb.flat):
            out.append(1.0)
        else:
            va, vb = view(pa, False), view(pb, mirrored)
            out.append(max(va.best_match(vb.template), vb.best_match(va.template)))
        if on_progress:
            on_progress(done, len(pairs))
    return out
