"""Second pass: check grey-zone pairs on pixels, so crops are found without false pairs.

A copy cropped by a few percent lands at hash distance 6-16 from its original, where
different photos of the same scene also land (measured in docs/dedup.md). For those
pairs only, both images are shrunk to small grey thumbnails and the centre of one is
searched in the other over shifts and scales up to ``MAX_SCALE`` (normalised cross
correlation, so brightness and contrast changes do not matter). A crop matches at
>= 0.94 on the planted set; different shots of one scene at <= 0.84.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps

from ..images import UnreadableImage, open_image

log = logging.getLogger(__name__)

DEFAULT_MIN_CORRELATION = 0.90
THUMB = 40  # side of the square grey thumbnail compared
MARGIN = 4  # pixels dropped on each side of the template (its centre is searched)
MAX_SCALE = 1.16  # up to ~14 % cropped away in each direction
SCALES = tuple(float(s) for s in np.round(np.arange(1.0, MAX_SCALE + 1e-9, 0.03), 3))


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


def _grey(path: str) -> Image.Image:
    img = ImageOps.grayscale(open_image(path))
    img.thumbnail((256, 256))
    return img


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
) -> list[float | None]:
    """Pixel similarity for each ``(path_a, path_b, mirrored)``; ``None`` when a file
    can no longer be read. Each image is decoded once per call."""
    pairs = list(pairs)
    views: dict[tuple[str, bool], _View | None] = {}

    def view(path: str, mirrored: bool) -> _View | None:
        key = (path, mirrored)
        if key not in views:
            try:
                g = _grey(path)
                views[key] = _View(ImageOps.mirror(g) if mirrored else g)
            except UnreadableImage as exc:
                log.warning("cannot verify %s: %s", path, exc.reason)
                views[key] = None
        return views[key]

    out: list[float | None] = []
    for done, (pa, pb, mirrored) in enumerate(pairs, 1):
        va, vb = view(pa, False), view(pb, mirrored)
        if va is None or vb is None:
            out.append(None)
        else:
            out.append(max(va.best_match(vb.template), vb.best_match(va.template)))
        if on_progress:
            on_progress(done, len(pairs))
    return out
