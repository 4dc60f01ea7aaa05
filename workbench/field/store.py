"""A field photo from upload to file: checked, turned upright, stripped of its location,
stored inside the workspace under its content hash.

The stored file is written again by Pillow, never copied byte for byte: its pixels are
the EXIF-corrected photo (orientation applied, the tag reset), so the boxes the model
returns, in pixels of the upright photo, fit the file as it is; its EXIF keeps what the
camera wrote (time, camera model) except the GPS IFD, unless the workspace opts in
(``[field] keep_location = true``). XMP and comments, where phones also put a position,
are not written. JPEG uploads are stored as JPEG (quality 95), everything else as PNG.

Nothing is left behind when an upload is refused: the checks run on the bytes in memory,
and the file appears under its final name only after it is complete (``atomic_write_bytes``).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from ..fsutil import atomic_write_bytes
from ..images import UnreadableImage, decode_image_bytes, to_rgb

GPS_IFD = 0x8825
ORIENTATION = 0x0112
JPEG_FORMATS = ("JPEG", "MPO")
JPEG_QUALITY = 95


class PhotoRefused(Exception):
    """An upload that is not stored; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class UprightPhoto:
    """A checked upload, upright and ready to store (nothing written yet)."""

    image: Image.Image  # RGB, orientation applied: what the model sees
    data: bytes  # the file to store
    suffix: str
    had_location: bool
    location_kept: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def upright_photo(data: bytes, keep_location: bool = False) -> UprightPhoto:
    """Check an upload and re-encode it upright; raises ``PhotoRefused`` (4xx)."""
    try:
        original = decode_image_bytes(data)
    except UnreadableImage as exc:
        raise PhotoRefused(_status(exc.reason), f"not stored: {exc.reason}") from None
    fmt = original.format
    try:
        exif = original.getexif()
    except Exception:  # a broken EXIF block: store the pixels without it
        exif = Image.Exif()
    had_location = bool(exif.get_ifd(GPS_IFD)) if GPS_IFD in exif else False
    try:
        upright = ImageOps.exif_transpose(original)
    except Exception:
        upright = original
    image = to_rgb(upright)
    image.info = {}  # no XMP, comments or text chunks carried over
    exif.pop(ORIENTATION, None)  # applied to the pixels
    if not keep_location:
        exif.pop(GPS_IFD, None)
    buf = io.BytesIO()
    icc = original.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc else {}
    if fmt in JPEG_FORMATS:
        image.save(buf, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes(), **extra)
        suffix = ".jpg"
    else:
        image.save(buf, "PNG", exif=exif.tobytes(), **extra)
        suffix = ".png"
    return UprightPhoto(image, buf.getvalue(), suffix, had_location, had_location and keep_location)


def store_photo(photos_dir: Path, photo: UprightPhoto) -> tuple[Path, bool]:
    """Write the photo as ``<sha256><suffix>`` under ``photos_dir``; returns (path,
    written now). The same photo sent again is the same file, written once."""
    path = Path(photos_dir) / f"{photo.sha256}{photo.suffix}"
    if path.is_file():
        return path, False
    atomic_write_bytes(path, photo.data)
    return path, True


def _status(reason: str) -> int:
    if reason.startswith("decompression bomb"):
        return 413
    if reason.startswith("not an image"):
        return 415
    return 422  # empty, truncated, corrupt
