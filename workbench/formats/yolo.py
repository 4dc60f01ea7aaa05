"""YOLO txt: images/ and labels/ side by side (or a txt next to each image), class names
in classes.txt, obj.names or data.yaml ``names``. Coordinates are normalised
``class cx cy w h`` of the EXIF-corrected image."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ..catalog.records import Box, ImportedImage
from ..fsutil import atomic_write_text
from ..images import UnreadableImage, is_image_file, probe_image


def _class_names(root: Path) -> list[str]:
    from . import FormatError

    for name in ("classes.txt", "obj.names"):
        p = root / name
        if p.is_file():
            return [line.strip() for line in p.read_text().splitlines() if line.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        p = root / name
        if p.is_file():
            text = p.read_text()
            m = re.search(r"^names:\s*\[(.*?)\]", text, re.M | re.S)
            if m:
                return [n.strip().strip("'\"") for n in m.group(1).split(",") if n.strip()]
            m = re.search(r"^names:\s*\n((?:\s+.*\n?)+)", text, re.M)
            if m:
                out = []
                for line in m.group(1).splitlines():
                    line = line.strip()
                    if not line:
                        continue
                    line = re.sub(r"^(-|\d+:)\s*", "", line)
                    out.append(line.strip("'\""))
                return out
    raise FormatError(
        f"no class names for YOLO data in {root}: add classes.txt (one name a "
        "line) or data.yaml with `names`"
    )


def _label_file(img: Path, root: Path) -> Path:
    rel = img.relative_to(root)
    parts = list(rel.parts)
    if "images" in parts:
        parts[parts.index("images")] = "labels"
        cand = root.joinpath(*parts).with_suffix(".txt")
        if cand.exists():
            return cand
    return img.with_suffix(".txt")


def read_yolo(root: Path, images_dir: Path | None) -> Iterator[ImportedImage]:
    from . import FormatError, majority_label

    if not root.is_dir():
        raise FormatError(
            f"--format yolo needs a folder (images/, labels/, classes.txt); {root} is a file"
        )
    names = _class_names(root)
    search = images_dir or root
    imgs = sorted(
        Path(dp) / f for dp, dns, fs in os.walk(search) for f in fs if is_image_file(Path(f))
    )
    if not imgs:
        raise FormatError(f"no images found under {search}")
    for img in imgs:
        lf = _label_file(img, search)
        if not lf.exists():
            yield ImportedImage(path=str(img.resolve()), label=None, boxes=None)
            continue
        try:
            info = probe_image(img)
        except UnreadableImage:
            yield ImportedImage(path=str(img.resolve()), label=None, boxes=None)
            continue
        boxes = []
        for n, line in enumerate(lf.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                cls, cx, cy, w, h = int(fields[0]), *map(float, fields[1:5])
            except (ValueError, IndexError):
                raise FormatError(f"{lf}:{n}: expected 'class cx cy w h', got {line!r}") from None
            if not 0 <= cls < len(names):
                raise FormatError(
                    f"{lf}:{n}: class index {cls} is not in the {len(names)} class names"
                )
            W, H = info.width, info.height
            boxes.append(
                Box(
                    names[cls],
                    (cx - w / 2) * W,
                    (cy - h / 2) * H,
                    (cx + w / 2) * W,
                    (cy + h / 2) * H,
                )
            )
        yield ImportedImage(path=str(img.resolve()), label=majority_label(boxes), boxes=boxes)


def write_yolo(out: Path, items, classes: list[str]) -> Path:
    from . import export_name

    names = list(classes)
    for it in items:
        for b in it.boxes:
            if b.label not in names:
                names.append(b.label)
    idx = {n: i for i, n in enumerate(names)}
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(items, start=1):
        stem = export_name(it, i)
        src = Path(it.path)
        link = out / "images" / f"{stem}{src.suffix}"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(src)  # a link, never a copy or a move of the user's image
        lines = []
        for b in it.boxes:
            cx = (b.x1 + b.x2) / 2 / it.width
            cy = (b.y1 + b.y2) / 2 / it.height
            lines.append(
                f"{idx[b.label]} {cx!r} {cy!r} {(b.x2 - b.x1) / it.width!r} "
                f"{(b.y2 - b.y1) / it.height!r}"
            )
        atomic_write_text(
            out / "labels" / f"{stem}.txt", "\n".join(lines) + ("\n" if lines else "")
        )
    atomic_write_text(out / "classes.txt", "\n".join(names) + "\n")
    atomic_write_text(
        out / "data.yaml",
        "path: .\ntrain: images\nval: images\nnames: [" + ", ".join(repr(n) for n in names) + "]\n",
    )
    return out
