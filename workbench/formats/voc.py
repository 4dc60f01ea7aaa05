"""Pascal VOC: a folder of XML files (Annotations/, annots/ or anywhere below) and
their images (JPEGImages/, images/, next to the XML, or the XML's <path>)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from ..catalog.records import Box, ImportedImage
from ..fsutil import atomic_write_text

IMAGE_DIR_NAMES = ("JPEGImages", "images", "Images", "imgs")


def _find_image(
    xml_path: Path, root: Path, filename: str, path_text: str | None, images_dir: Path | None
) -> Path | None:
    candidates = []
    if images_dir:
        candidates.append(images_dir / filename)
    for d in (xml_path.parent.parent, root):
        for name in IMAGE_DIR_NAMES:
            candidates.append(d / name / filename)
    candidates.append(xml_path.parent / filename)
    if path_text:
        candidates.append(Path(path_text))
    for c in candidates:
        if c.is_file():
            return c
    return None


def read_voc(root: Path, images_dir: Path | None) -> Iterator[ImportedImage]:
    from . import FormatError, majority_label

    if root.is_file():
        xmls = [root]
        root = root.parent
    else:
        xmls = sorted(
            Path(dp) / f for dp, _, fs in os.walk(root) for f in fs if f.lower().endswith(".xml")
        )
    if not xmls:
        raise FormatError(
            f"no Pascal VOC XML files found under {root}; --format voc needs a "
            "folder with Annotations/*.xml and the images"
        )
    for xml_path in xmls:
        try:
            tree = ET.parse(xml_path)
        except ET.ParseError as exc:
            raise FormatError(f"{xml_path} is not valid XML: {exc}") from None
        ann = tree.getroot()
        if ann.tag != "annotation":
            raise FormatError(f"{xml_path} is not a Pascal VOC annotation (root <{ann.tag}>)")
        filename = (ann.findtext("filename") or "").strip()
        path_text = (ann.findtext("path") or "").strip() or None
        if not filename and path_text:
            filename = Path(path_text).name
        img = _find_image(xml_path, root, filename, path_text, images_dir)
        if img is None:
            raise FormatError(
                f"{xml_path}: image '{filename}' not found next to it, in "
                f"{'/'.join(IMAGE_DIR_NAMES)} or at its <path>; pass --images DIR"
            )
        boxes = []
        for obj in ann.findall("object"):
            bb = obj.find("bndbox")
            name = (obj.findtext("name") or "").strip()
            if bb is None or not name:
                raise FormatError(f"{xml_path}: an <object> without <name> or <bndbox>")
            try:
                coords = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                raise FormatError(
                    f"{xml_path}: a <bndbox> with missing or non-numeric coordinates"
                ) from None
            boxes.append(Box(name, *coords))
        size = ann.find("size")
        w = int(float(size.findtext("width") or 0)) if size is not None else None
        h = int(float(size.findtext("height") or 0)) if size is not None else None
        label = (ann.findtext("wb_label") or "").strip() or majority_label(boxes)
        yield ImportedImage(
            path=str(img.resolve()), label=label, boxes=boxes, width=w or None, height=h or None
        )


def _fmt(v: float) -> str:
    return repr(float(v)) if float(v) != int(v) else str(int(v))


def write_voc(out: Path, items) -> Path:
    from xml.sax.saxutils import escape

    from . import export_name

    ann_dir = out / "Annotations"
    img_dir = out / "JPEGImages"
    ann_dir.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(items, start=1):
        stem = export_name(it, i)
        src = Path(it.path)
        link = img_dir / f"{stem}{src.suffix}"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(src)  # a link, never a copy or a move of the user's image
        objs = "".join(
            f"  <object><name>{escape(b.label)}</name><pose>Unspecified</pose><truncated>0"
            f"</truncated><difficult>0</difficult><bndbox><xmin>{_fmt(b.x1)}</xmin><ymin>"
            f"{_fmt(b.y1)}</ymin><xmax>{_fmt(b.x2)}</xmax><ymax>{_fmt(b.y2)}</ymax></bndbox>"
            "</object>\n"
            for b in it.boxes
        )
        label = f"  <wb_label>{escape(it.label)}</wb_label>\n" if it.label else ""
        xml = (
            f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(link.name)}"
            f"</filename>\n  <path>{escape(str(src))}</path>\n{label}  <size><width>{it.width}"
            f"</width><height>{it.height}</height><depth>3</depth></size>\n"
            f"  <segmented>0</segmented>\n{objs}</annotation>\n"
        )
        atomic_write_text(ann_dir / f"{stem}.xml", xml)
    return out
