"""Plain records that cross module boundaries."""
from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("active", "unreadable", "duplicate", "conflict", "excluded")
SPLITS = ("train", "val", "test")


@dataclass
class Box:
    """A box in pixel xyxy coordinates of the EXIF-corrected image."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    source: str = "import"
    annotator: str | None = None
    annotation_id: int | None = None
    score: float | None = None

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass
class ImageRecord:
    id: int | None
    path: str
    sha256: str | None = None
    file_size: int | None = None
    mtime: float | None = None
    width: int | None = None
    height: int | None = None
    label: str | None = None
    status: str = "active"
    status_reason: str | None = None
    source_format: str | None = None
    source: str | None = None
    annotated: bool = False
    split: str | None = None
    ingested_at: str | None = None
    updated_at: str | None = None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass
class ImportedImage:
    """What a format reader yields: one image, its image-level label, and boxes.

    ``boxes is None`` means the source says nothing about boxes (folder-per-class);
    ``boxes == []`` means the source annotated the image and it has no objects (a negative).
    """

    path: str
    label: str | None = None
    boxes: list[Box] | None = None
    width: int | None = None    # as the source claims; the real size comes from the file
    height: int | None = None
    extra: dict = field(default_factory=dict)
