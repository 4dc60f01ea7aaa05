"""Annotation formats <-> catalog records.

``read(path, fmt)`` yields ``ImportedImage`` records; ``write(fmt, out, items, classes)``
writes ``ExportItem`` records. Readers never open user images for writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..catalog.records import Box, ImportedImage
from ..errors import WorkbenchError, check_choice
from ..fsutil import remove_leftover_temps
from ..taxonomy import image_level_label

FORMATS = ("folders", "coco", "voc", "yolo", "labelstudio")
EXPORT_FORMATS = ("coco", "voc", "yolo")


class FormatError(WorkbenchError):
    """The input is not in the format the user named, or is malformed."""


@dataclass
class ExportItem:
    path: str
    width: int
    height: int
    label: str | None
    boxes: list[Box]


def majority_label(boxes: list[Box] | None) -> str | None:
    """The image-level label a file without one gets from its boxes (None: no boxes)."""
    return image_level_label(None, (b.label for b in boxes or ()), default=None)


def read(
    path: str | Path,
    fmt: str,
    images_dir: str | Path | None = None,
    known_labels: Iterable[str] = (),
    skipped_links: list[tuple[str, str]] | None = None,
    follow_links: bool = False,
) -> Iterator[ImportedImage]:
    """``skipped_links`` (folders only) receives ``(link, target)`` for each symbolic
    link that leaves ``path``; with ``follow_links`` such links are followed instead, and
    recorded there all the same."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    check_choice("format", fmt, FORMATS, error=FormatError)
    images_dir = Path(images_dir).expanduser() if images_dir else None
    if fmt == "folders":
        from .folders import read_folders

        return read_folders(path, set(known_labels), skipped_links, follow_links)
    if fmt == "coco":
        from .coco import read_coco

        return read_coco(path, images_dir)
    if fmt == "voc":
        from .voc import read_voc

        return read_voc(path, images_dir)
    if fmt == "yolo":
        from .yolo import read_yolo

        return read_yolo(path, images_dir)
    from .labelstudio_json import read_labelstudio

    return read_labelstudio(path, images_dir)


def write(fmt: str, out: str | Path, items: list[ExportItem], classes: list[str]) -> Path:
    check_choice("export format", fmt, EXPORT_FORMATS, error=FormatError)
    out = Path(out).expanduser().resolve()
    # what a killed export's writes left (only wb's own temporary names, dead writers)
    written = [out.parent] if out.suffix.lower() == ".json" else [out, out / "Annotations"]
    for folder in [*written, out / "labels"]:
        remove_leftover_temps(folder)
    if fmt == "coco":
        from .coco import write_coco

        return write_coco(out, items, classes)
    if fmt == "voc":
        from .voc import write_voc

        return write_voc(out, items)
    from .yolo import write_yolo

    return write_yolo(out, items, classes)


def export_name(item: ExportItem, index: int) -> str:
    """A collision-free file stem for an exported image: index + original stem."""
    return f"{index:06d}_{Path(item.path).stem}"
