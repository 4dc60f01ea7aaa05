"""Every row type the catalog hands out: plain dataclasses, one module.

Records read back from a table are frozen. ``Box``, ``ImageRecord``, ``ImportedImage``
and ``LsAnnotation`` are built and filled in by callers before they are written, so
they stay mutable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
    width: int | None = None  # as the source claims; the real size comes from the file
    height: int | None = None
    extra: dict = field(default_factory=dict)


# ---- models and predictions ----------------------------------------------------


@dataclass(frozen=True)
class ModelRecord:
    """One registered model version (a ``models`` row, JSON columns decoded)."""

    version: str
    parent: str | None
    created_at: str
    promoted: bool
    promoted_at: str | None
    level: str | None
    classes: list[str]
    metrics: dict[str, Any]
    config: dict[str, Any]
    task: str  # "detect" (Faster R-CNN detectors) or "classify" (`wb classify`)

    @property
    def backbone(self) -> str | None:
        return self.config.get("train", {}).get("backbone")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Classification:
    """A classifier's answer for one image (a ``classifications`` row)."""

    image_id: int
    model_version: str
    label: str  # the most probable class
    score: float  # its probability
    probs: dict[str, float]  # every class of the model -> p
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- priorities -----------------------------------------------------------------


@dataclass(frozen=True)
class PriorityRecord:
    """One image's annotation priority under a model version (rank 1: most uncertain)."""

    image_id: int
    path: str
    uncertainty: float
    components: dict[str, float]
    rank: int
    selected: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- Label Studio tasks and annotations ------------------------------------------


@dataclass
class LsAnnotation:
    """One Label Studio annotation as seen at a pull."""

    annotation_id: int
    task_id: int
    image_id: int | None
    annotator: str | None
    updated_at: str | None
    was_cancelled: bool
    n_boxes: int
    chosen: bool
    result: list
    lead_time: float | None = None  # seconds Label Studio recorded; None: not recorded


@dataclass(frozen=True)
class AnnotationEconomics:
    """One submitted Label Studio annotation against the boxes it started from (`wb pull`
    records it, `wb report` sums it): the box outcomes, and the seconds it took."""

    annotation_id: int
    project_id: int
    task_id: int
    image_id: int | None
    annotator: str | None
    updated_at: str | None
    pulled_at: str
    lead_time: float | None  # seconds Label Studio recorded; None: it holds none
    prediction_id: int | None  # the prediction it started from; None: none
    model_version: str | None  # that prediction's model version
    predrawn: int  # boxes pre-drawn (0: drawn from scratch)
    final_boxes: int
    kept: int
    moved: int
    relabelled: int
    deleted: int
    new: int


@dataclass(frozen=True)
class AdjudicationTask:
    """A group's task in the Label Studio adjudication project (``wb dedup adjudicate``)."""

    project_id: int
    group_id: int
    group_key: str  # the group's members when the task was made
    task_id: int
    pushed_at: str
    applied_annotation_id: int | None
    applied_updated_at: str | None


# ---- duplicate groups -------------------------------------------------------------


@dataclass(frozen=True)
class DupMember:
    image_id: int
    keep: bool
    distance: int | None


@dataclass(frozen=True)
class DupGroup:
    id: int
    group_key: str
    kind: str  # duplicate | conflict
    method: str | None
    max_distance: int | None
    resolution: str | None  # None (open) | label | distinct
    resolved_label: str | None
    resolved_by: str | None
    resolved_at: str | None
    created_at: str
    updated_at: str
    members: list[DupMember] = field(default_factory=list)

    @property
    def image_ids(self) -> list[int]:
        return [m.image_id for m in self.members]

    @property
    def settled(self) -> bool:
        return self.resolution is not None


# ---- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRecord:
    """One event Label Studio sent to the ML backend's ``/webhook`` (payload decoded)."""

    id: int
    received_at: str
    action: str
    project_id: int | None
    task_id: int | None
    annotation_id: int | None
    payload: dict[str, Any] | None
    consumed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- the field app ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDevice:
    """A device allowed to use the field app (its token's hash is not handed out)."""

    name: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class FieldPhoto:
    """One upload to ``POST /v1/detect``: the photo (an image row) and the model's answer."""

    id: int
    image_id: int
    device: str
    model_version: str
    answer: str  # the top class, or background
    answer_score: float | None
    uncertainty: float
    uncertain: bool
    detections: list[dict[str, Any]]  # as the device was shown them
    created_at: str


@dataclass(frozen=True)
class FieldFeedback:
    """One verdict a device sent on a photo (the latest per photo and device counts)."""

    id: int
    photo_id: int
    device: str
    verdict: str  # correct | wrong
    label: str | None
    note: str | None
    created_at: str
