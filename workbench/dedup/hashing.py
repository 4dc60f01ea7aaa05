"""Perceptual hashes of images, computed in worker processes.

Each image gives four 64-bit hashes:

- ``full``: the whole image, and the same of its horizontal mirror;
- ``centre``: the central part of the image (``CENTRE_KEEP`` of each side), and its
  mirror. Copies with a banner pasted along an edge or cropped by a few percent land
  far from the original on the full-image hash but close on the centre hash
  (measured in docs/dedup.md).

All four come from one small grey picture: ``workbench.images.open_grey_reduced``
decodes a JPEG at 1/2..1/8 of its size straight to grey (EXIF orientation, odd modes
and corrupt files handled as everywhere else), keeping each side at least
``decode_min_side(method)``; then each view is resized to the hash's input size with
Lanczos, as imagededup does, and hashed by the same arithmetic as imagededup's hash
classes (``_HASHES``; checked bit for bit against imagededup in
tests/unit/test_dedup_hashing.py). The hex strings are imagededup's format.

Hashes are cached in the catalog under ``cache_keys(method)``, which carry
``PIPELINE_VERSION``: a change that alters any hash value bumps it, so hashes made
by an older pipeline are never compared with new ones (they are simply not read).

Unreadable files are returned in ``EncodeResult.unreadable`` with the reason, never
dropped silently.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from ..errors import WorkbenchError
from ..images import UnreadableImage, open_grey_reduced, to_grey

log = logging.getLogger(__name__)

METHODS = ("phash", "dhash", "whash", "ahash")
DEFAULT_METHOD = "phash"
VIEWS = ("full", "centre")
# Fraction of width and height the centre view keeps: drops banners up to ~15 % of the
# height and makes a crop of a few percent a smaller relative shift.
CENTRE_KEEP = 0.70
# Images are shrunk to this longest side before hashing: hashes look at 8x8..256x256
# pixels, so this changes nothing they see and makes big photos (PNGs, which cannot be
# decoded at a reduced size) cheap to hash.
WORK_SIZE = 512
# Version of the pipeline from file to hash, part of the catalog's cache key.
# 1: full RGB decode, imagededup's encode_image per view (RGB resize, then grey).
# 2: reduced-size grey JPEG decode, one grey picture for all four views.
PIPELINE_VERSION = 2
# Each view is resized to the hash's input with Lanczos from a picture at least this
# many times the input size, so the resize still averages several pixels per input
# pixel even on the centre view.
OVERSAMPLE = 2

ProgressFn = Callable[[int, int], None]


class UnknownHashMethod(WorkbenchError):
    def __init__(self, method: str):
        super().__init__(f"unknown hash method {method!r}; valid: {', '.join(METHODS)}")


@dataclass
class ImageHashes:
    """The four hashes of one image, as 16-digit hex strings (imagededup's format)."""

    hash: str
    mirror_hash: str
    centre_hash: str
    centre_mirror_hash: str


@dataclass
class EncodeResult:
    """Hashes per path (``hashes``/``mirror_hashes`` for the whole image, ``centre_*`` for
    the centre view) and the files that could not be read, as ``(path, reason)``."""

    hashes: dict[str, str] = field(default_factory=dict)
    mirror_hashes: dict[str, str] = field(default_factory=dict)
    centre_hashes: dict[str, str] = field(default_factory=dict)
    centre_mirror_hashes: dict[str, str] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def get(self, path: str) -> ImageHashes | None:
        if path not in self.hashes:
            return None
        return ImageHashes(
            self.hashes[path],
            self.mirror_hashes[path],
            self.centre_hashes[path],
            self.centre_mirror_hashes[path],
        )


# ---- the hashes: imagededup's arithmetic on a grey array of the input size --------
def _phash_bits(a: np.ndarray) -> np.ndarray:
    from scipy.fftpack import dct  # what imagededup uses: same floats, same bits

    coef = dct(dct(a, axis=0), axis=1)[:8, :8]
    return coef >= np.median(coef.flatten()[1:])  # median without the DC term


def _ahash_bits(a: np.ndarray) -> np.ndarray:
    return a >= np.mean(a)


def _dhash_bits(a: np.ndarray) -> np.ndarray:
    return a[:, 1:] > a[:, :-1]


def _whash_bits(a: np.ndarray) -> np.ndarray:
    import pywt

    low = pywt.wavedec2(data=a / 255, wavelet="haar", level=5)[0]
    return low >= np.median(low.flatten())


# method -> (input size as PIL's (width, height), bits of a grey uint8 array that size)
_HASHES: dict[str, tuple[tuple[int, int], Callable[[np.ndarray], np.ndarray]]] = {
    "phash": ((32, 32), _phash_bits),
    "dhash": ((9, 8), _dhash_bits),
    "whash": ((256, 256), _whash_bits),
    "ahash": ((8, 8), _ahash_bits),
}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UnknownHashMethod(method)
    return method


def cache_keys(method: str) -> tuple[str, str]:
    """The catalog's ``image_hashes.method`` values for the full and centre views of
    ``method`` hashed by this pipeline version (version 1 wrote ``phash`` and
    ``phash:centre``; those rows are no longer read)."""
    check_method(method)
    full = f"{method}:pipeline{PIPELINE_VERSION}"
    return full, f"{full}:centre"


def decode_min_side(method: str) -> int:
    """Smallest side the decoded picture keeps: the centre view still holds
    ``OVERSAMPLE`` pixels per hash input pixel."""
    side = max(_HASHES[check_method(method)][0])
    return math.ceil(OVERSAMPLE * side / CENTRE_KEEP)


def hash_grey(view: Image.Image, method: str = DEFAULT_METHOD) -> str:
    """One hash of a grey ("L") picture: resized with Lanczos to the hash's input size,
    hashed, as imagededup's ``encode_image(image_array=...)`` does."""
    size, bits = _HASHES[check_method(method)]
    a = np.asarray(view.resize(size, Image.LANCZOS), dtype=np.uint8)
    return "".join(f"{x:02x}" for x in np.packbits(bits(a)))


def centre_view(img: Image.Image, keep: float = CENTRE_KEEP) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
    return img.crop((dx, dy, w - dx, h - dy)) if w - 2 * dx >= 8 and h - 2 * dy >= 8 else img


def _shrink(img: Image.Image) -> Image.Image:
    longest = max(img.size)
    if longest > 2 * WORK_SIZE:
        img = img.reduce(longest // WORK_SIZE)  # box filter, fast and alias-free
    if max(img.size) > WORK_SIZE:
        img = img.copy()
        img.thumbnail((WORK_SIZE, WORK_SIZE), Image.LANCZOS)
    return img


def hash_image(img: Image.Image, method: str = DEFAULT_METHOD) -> ImageHashes:
    """The four hashes of an image (any mode; hashed in grey)."""
    grey = _shrink(to_grey(img))
    centre = centre_view(grey)
    return ImageHashes(
        hash_grey(grey, method),
        hash_grey(ImageOps.mirror(grey), method),
        hash_grey(centre, method),
        hash_grey(ImageOps.mirror(centre), method),
    )


# ---- worker side ----------------------------------------------------------
def _limit_threads() -> None:
    try:  # hashing is pure CPU: keep BLAS/OpenMP from oversubscribing the cores
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
    except Exception:
        pass


def _hash_path(path: str, method: str) -> tuple[str, ImageHashes | None, str | None]:
    try:
        img = open_grey_reduced(path, decode_min_side(method))
    except UnreadableImage as exc:
        return path, None, exc.reason
    try:
        return path, hash_image(img, method), None
    except Exception as exc:  # a hash that fails on a readable image is a reason too
        return path, None, f"cannot hash: {type(exc).__name__}: {exc}"
    finally:
        img.close()


def hash_chunk(job: tuple[str, list[str]]) -> list[tuple[str, ImageHashes | None, str | None]]:
    """``(method, paths)`` -> ``(path, hashes or None, reason)`` per path: one task of
    any engine (a pure function of the files)."""
    method, paths = job
    check_method(method)
    return [_hash_path(p, method) for p in paths]


def default_workers() -> int:
    from ..engine import available_cores

    return available_cores()


def chunk_size(total: int, workers: int) -> int:
    """Paths per task: small enough to spread the work, large enough to amortise."""
    return max(1, min(64, total // (max(1, workers) * 8)))


def iter_hashes(
    paths: Sequence[str],
    method: str = DEFAULT_METHOD,
    workers: int | None = None,
    engine=None,
) -> Iterator[list[tuple[str, ImageHashes | None, str | None]]]:
    """Hash ``paths`` on ``engine`` (``workbench.engine``; default this machine),
    yielding each finished chunk's ``(path, hashes or None, reason)`` as it arrives
    (chunks in any order), so the caller can store them as they come."""
    from ..engine import LocalEngine

    check_method(method)
    engine = engine or LocalEngine()
    paths = [str(p) for p in paths]
    if not paths:
        return
    n = engine.workers() if workers is None else workers
    size = chunk_size(len(paths), n)
    jobs = [(method, paths[i : i + size]) for i in range(0, len(paths), size)]
    yield from engine.map_tasks(hash_chunk, jobs, workers=workers, initializer=_limit_threads)


def encode(
    paths: Sequence[str] | Iterable[str],
    method: str = DEFAULT_METHOD,
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
    engine=None,
) -> EncodeResult:
    """Hash every path (full image, its mirror, centre view, its mirror).

    ``workers``: processes to use (default: all cores available to us, or the Ray
    cluster's CPUs; 0 or 1 hashes in this process). ``engine``: ``workbench.engine``
    engine (default local). ``on_progress(done, total)`` is called as results arrive.

    >>> r = encode(["a.jpg", "broken.jpg"])            # doctest: +SKIP
    >>> r.hashes["a.jpg"], r.unreadable
    ('9f17...', [('broken.jpg', 'truncated image: ...')])
    """
    paths = [str(p) for p in paths]
    result = EncodeResult()
    done = 0
    for chunk in iter_hashes(paths, method, workers, engine):
        for path, hashes, reason in chunk:
            if hashes is None:
                result.unreadable.append((path, reason))
            else:
                result.hashes[path] = hashes.hash
                result.mirror_hashes[path] = hashes.mirror_hash
                result.centre_hashes[path] = hashes.centre_hash
                result.centre_mirror_hashes[path] = hashes.centre_mirror_hash
        done += len(chunk)
        if on_progress:
            on_progress(done, len(paths))
    return result


def hex_to_uint64(hashes: Sequence[str]) -> np.ndarray:
    """16-digit hex hashes -> uint64 array (imagededup's hex is the 64 bits, MSB first)."""
    return np.fromiter((int(h, 16) for h in hashes), dtype=np.uint64, count=len(hashes))
