"""Folder-per-class: the folder name is the image-level label; nested folders allowed.

The label of an image is the nearest enclosing folder (below the root) whose name
is a known class, compared case-insensitively; when none is known, the first folder
below the root (so an unknown class is reported by name rather than silently ignored).
Images directly in the root get no label.

Symbolic links, to files and to folders alike, are followed when their target stays
inside the root and skipped (reported to ``skipped_links``) when it leaves it: a link
out of the folder would catalog files the user did not point at. With ``follow_links``
(`wb ingest --follow-links`, the user's word) they are followed wherever they lead,
and reported all the same. A link to a folder that encloses it (a loop) is not walked
again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..catalog.records import ImportedImage
from ..images import is_image_file


def _inside(target: str, root: Path) -> bool:
    return Path(target).is_relative_to(root)


def read_folders(
    root: Path,
    known_labels: set[str],
    skipped_links: list[tuple[str, str]] | None = None,
    follow_links: bool = False,
) -> Iterator[ImportedImage]:
    """``skipped_links`` (when given) receives ``(link, target)`` for each link that
    leaves ``root``: skipped, or with ``follow_links`` followed."""
    from . import FormatError

    if not root.is_dir():
        raise FormatError(
            f"--format folders needs a folder with one sub-folder per class; {root} is a file"
        )
    root = root.resolve()
    known = {k.casefold() for k in known_labels}
    skipped = skipped_links if skipped_links is not None else []
    found = False
    walked: set[str] = set()  # real folders already walked: a cycle of links ends there
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = os.path.realpath(dirpath)
        walked.add(here)
        walk = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            link = os.path.join(dirpath, d)
            if os.path.islink(link):
                target = os.path.realpath(link)
                if not _inside(target, root):
                    skipped.append((link, target))
                    if not follow_links:
                        continue
                if here == target or Path(here).is_relative_to(target) or target in walked:
                    continue  # a loop back to an enclosing (or an already walked) folder
            walk.append(d)
        dirnames[:] = walk
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not is_image_file(p):
                continue
            if p.is_symlink():
                target = os.path.realpath(p)
                if not _inside(target, root):
                    skipped.append((str(p), target))
                    if not follow_links:
                        continue
            found = True
            parts = p.relative_to(root).parts[:-1]
            label = None
            for part in reversed(parts):
                if part.casefold() in known:
                    label = part
                    break
            if label is None and parts:
                label = parts[0]
            yield ImportedImage(path=str(p), label=label, boxes=None)
    if not found:
        raise FormatError(
            f"no image files (.jpg, .png, ...) found under {root}"
            + (
                f" ({len(skipped)} symbolic link(s) leave the folder and were skipped; "
                "--follow-links follows them)"
                if skipped and not follow_links
                else ""
            )
        )
