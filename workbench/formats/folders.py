"""Folder-per-class: the folder name is the image-level label; nested folders allowed.

The label of an image is the nearest enclosing folder (below the root) whose name
is a known class; when none is known, the first folder below the root (so an
unknown class is reported by name rather than silently ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..catalog.records import ImportedImage
from ..images import is_image_file


def read_folders(root: Path, known_labels: set[str]) -> Iterator[ImportedImage]:
    from . import FormatError

    if not root.is_dir():
        raise FormatError(
            f"--format folders needs a folder with one sub-folder per class; {root} is a file"
        )
    root = root.resolve()
    found = False
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not is_image_file(p):
                continue
            found = True
            parts = p.relative_to(root).parts[:-1]
            label = None
            for part in reversed(parts):
                if part in known_labels:
                    label = part
                    break
            if label is None and parts:
                label = parts[0]
            yield ImportedImage(path=str(p), label=label, boxes=None)
    if not found:
        raise FormatError(f"no image files (.jpg, .png, ...) found under {root}")
