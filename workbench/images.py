"""Safe image opening: EXIF orientation, size limits, corrupt and hostile files.

Every reader of user images goes through here. Files are opened read-only and
never written.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Refuse decompression bombs at Pillow's own limit (Pillow only warns between 1x and 2x).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 178_956_970
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
ImageFile.LOAD_TRUNCATED_IMAGES = False


# The reason's start when the file itself cannot be opened (missing, no permission),
# as opposed to a file that is not a readable image.
CANNOT_READ = "cannot read file"


class UnreadableImage(Exception):
    """The file is not an image we can read; ``reason`` says why, for the catalog."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    width: int  # after EXIF orientation
    height: int
    mode: str  # the file's own mode (CMYK, I;16, P, RGBA, ...)
    format: str | None


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open_checked(path: str | Path, draft: tuple[str | None, int] | None = None) -> Image.Image:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(path, f"{CANNOT_READ}: {exc.strerror or exc}") from None
    if size == 0:
        raise UnreadableImage(path, "empty file (0 bytes)")
    return _decode(path, path, draft)


def decode_image_bytes(data: bytes, name: str = "upload") -> Image.Image:
    """Decode an uploaded file's bytes with the checks a file gets (empty, not an image
    whatever its name says, decompression bombs, truncated or corrupt data). The image
    is returned as stored: its own mode, format and EXIF, not yet turned upright."""
    if not data:
        raise UnreadableImage(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name)


def _decode(source, path: str | Path, draft: tuple[str | None, int] | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise UnreadableImage(
                    path,
                    f"decompression bomb refused: {w}x{h} pixels is over "
                    f"Pillow's limit of {MAX_PIXELS}",
                )
            if draft is not None:
                # JPEG only (others ignore it): the decoder scales the DCT by 1/2..1/8,
                # keeping both sides >= min_side; it still reads every byte, so
                # truncated and corrupt data are still caught by load().
                mode, min_side = draft
                img.draft(mode, (min_side, min_side))
            img.load()  # decode fully: catches truncated and corrupt data
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(path, f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise UnreadableImage(path, "not an image (unrecognised format)") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            raise UnreadableImage(path, f"truncated image: {msg}") from None
        raise UnreadableImage(path, f"corrupt image: {msg}") from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise UnreadableImage(path, f"corrupt image: {type(exc).__name__}: {exc}") from None
    return img


def probe_image(path: str | Path) -> ImageInfo:
    """Decode the whole file once and return its EXIF-corrected size."""
    img = _open_checked(path)
    try:
        mode, fmt = img.mode, img.format
        w, h = img.size
        try:
            orientation = img.getexif().get(0x0112, 1)
        except Exception:  # broken EXIF blocks must not make a good image unreadable
            orientation = 1
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        return ImageInfo(w, h, mode, fmt)
    finally:
        img.close()


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: CMYK, 16-bit grey, palette, alpha (flattened on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0
        if img.mode.startswith("I;16") or 255 < hi <= 65535:
            scale = 255.0 / 65535.0  # the 16-bit range onto 8 bits, keeping brightness
        else:
            scale = 255.0 / hi if hi > 255 else 1.0
        return Image.fromarray((arr * scale).clip(0, 255).astype("uint8"), "L").convert("RGB")
    if img.mode == "F":
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (arr.min(), arr.max()) if arr.size else (0, 1)
        arr = (arr - lo) / ((hi - lo) or 1) * 255
        return Image.fromarray(arr.astype("uint8"), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def to_grey(img: Image.Image) -> Image.Image:
    """Any mode to 8-bit grey ("L"), by way of ``to_rgb`` for the odd modes."""
    return img if img.mode == "L" else to_rgb(img).convert("L")


def open_grey_reduced(path: str | Path, min_side: int) -> Image.Image:
    """Open as 8-bit grey, upright, with the same checks as ``open_image``, decoding a
    JPEG at a reduced size (both sides still >= ``min_side`` where the file is that big,
    through the decoder's DCT scaling and its grey output): several times faster than
    a full decode when only a small grey picture is needed (perceptual hashes)."""
    img = _open_checked(path, draft=("L", min_side))
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass
    return to_grey(img)


def open_image(path: str | Path) -> Image.Image:
    """Open as RGB in its EXIF-corrected orientation. Raises UnreadableImage."""
    img = _open_checked(path)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass
    return to_rgb(img)
