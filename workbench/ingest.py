"""`wb ingest`: catalog photos from a folder tree or an annotation export.

Each image is written in its own transaction, so an interrupted run leaves a
consistent catalog and a re-run completes it. A file already in the catalog with
the same size and modification time is not read again; a file that moved is
recognised by its sha256. The user's files are only ever read.

An export (COCO) that references files: when fewer than half of them exist
(``MIN_FOUND_FRACTION``), ingest refuses before writing anything, with examples of the
missing paths and the folder they would be found under (a wrong ``--images``), unless
``allow_missing``. A row recorded ``unreadable`` because its file was missing becomes
that image when a later ingest of the same export finds the file (``found_missing``):
no second row, no doubled boxes.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .catalog.records import Box, ImageRecord, ImportedImage
from .errors import UnknownClassError, WorkbenchError
from .faults import fault_point
from .formats import read
from .images import UnreadableImage, probe_image, sha256_file
from .workspace import Workspace

log = logging.getLogger(__name__)

#: an export ingest refuses when fewer than this fraction of the files it names exist
MIN_FOUND_FRACTION = 0.5
SHOWN_MISSING = 3  # missing paths the refusal shows
MISSING_REASON = "No such file or directory"  # what a missing file's probe says, in part


@dataclass
class IngestResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    boxes_added: int = 0
    boxes_dropped: int = 0  # degenerate boxes (zero area after clipping)
    boxes_unreadable: int = 0  # of ``boxes_added``: kept with unreadable files, counted nowhere
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    added_unreadable: int = 0  # of ``added``: new files that could not be read
    new_classes: list[str] = field(default_factory=list)
    # spelling in the source -> the taxonomy's class (names compare case-insensitively)
    case_mapped: dict[str, str] = field(default_factory=dict)
    unlabelled: int = 0  # images that got no label (folders: files directly in PATH)
    unlabelled_message: str | None = None
    skipped_links: list[tuple[str, str]] = field(default_factory=list)  # (link, target)
    followed_links: bool = False  # --follow-links: skipped_links were followed instead
    found_missing: int = 0  # of ``updated``: rows once missing, whose file was found now

    @property
    def seen(self) -> int:
        return self.added + self.updated + self.unchanged + self.moved

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "moved": self.moved,
            "boxes_added": self.boxes_added,
            "boxes_dropped": self.boxes_dropped,
            "boxes_unreadable": self.boxes_unreadable,
            "new_classes": self.new_classes,
            "added_unreadable": self.added_unreadable,
            "case_mapped": self.case_mapped,
            "unlabelled": self.unlabelled,
            "unlabelled_message": self.unlabelled_message,
            "skipped_links": [{"link": a, "target": b} for a, b in self.skipped_links],
            "followed_links": self.followed_links,
            "found_missing": self.found_missing,
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
        }


@dataclass
class _Probe:
    sha256: str | None
    size: int | None
    mtime: float | None
    width: int | None = None
    height: int | None = None
    error: str | None = None


def _probe(path: str) -> _Probe:
    try:
        st = os.stat(path)
    except OSError as exc:
        return _Probe(None, None, None, error=f"cannot read file: {exc.strerror or exc}")
    try:
        sha = sha256_file(path)
    except OSError as exc:
        return _Probe(None, st.st_size, st.st_mtime, error=f"cannot read file: {exc}")
    try:
        info = probe_image(path)
    except UnreadableImage as exc:
        return _Probe(sha, st.st_size, st.st_mtime, error=exc.reason)
    return _Probe(sha, st.st_size, st.st_mtime, info.width, info.height)


def _clip_boxes(boxes: list[Box], width: int | None, height: int | None) -> tuple[list[Box], int]:
    if width is None or height is None:
        return boxes, 0
    kept, dropped = [], 0
    for b in boxes:
        x1, y1 = max(0.0, min(b.x1, b.x2)), max(0.0, min(b.y1, b.y2))
        x2, y2 = min(float(width), max(b.x1, b.x2)), min(float(height), max(b.y1, b.y2))
        if x2 - x1 < 1e-6 or y2 - y1 < 1e-6:
            dropped += 1
            continue
        kept.append(Box(b.label, x1, y1, x2, y2, b.source, b.annotator, b.annotation_id))
    return kept, dropped


def _same_boxes(a: list[Box], b: list[Box]) -> bool:
    key = lambda x: (x.label, round(x.x1, 3), round(x.y1, 3), round(x.x2, 3), round(x.y2, 3))  # noqa: E731
    return sorted(map(key, a)) == sorted(map(key, b))


def canonical_labels(ws: Workspace, items: list[ImportedImage]) -> dict[str, str]:
    """Spell every label as the taxonomy does: class names compare case-insensitively,
    so a folder ``Raccoon/`` is the class ``raccoon``, not a new one. Returns what was
    mapped (source spelling -> class)."""
    tax = ws.taxonomy
    mapped: dict[str, str] = {}

    def spell(label: str) -> str:
        if tax.is_known(label):
            return label
        own = tax.canonical(label)
        if own is None:
            return label
        mapped[label] = own
        return own

    for it in items:
        if it.label is not None:
            it.label = spell(it.label)
        for b in it.boxes or []:
            b.label = spell(b.label)
    return mapped


def unlabelled_message(path: str | Path, fmt: str, count: int, ws: Workspace) -> str:
    """What to say when ``count`` images would get no label, with the fix: for a class
    folder ingested as PATH itself, the exact command on its parent."""
    msg = f"{count} image(s) under {path} would get no label"
    if fmt != "folders":
        return msg + "."
    root = Path(path).expanduser()
    msg += (
        ": with --format folders each sub-folder of PATH is a class, and images directly "
        "in PATH get none"
    )
    own = ws.taxonomy.canonical(root.resolve().name)
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if own is not None and not any(ws.taxonomy.canonical(d.name) for d in subdirs):
        parent = root.parent if str(root.parent) not in ("", ".") else root.resolve().parent
        return (
            f"{msg}. '{root.resolve().name}' is itself the class '{own}': did you mean the "
            f"parent folder? wb ingest {shlex.quote(str(parent))} --format folders"
        )
    return msg + ". Move them into a sub-folder named after their class."


def check_labels(
    ws: Workspace, items: list[ImportedImage], add_classes: bool, fmt: str | None = None
) -> list[str]:
    """Every image and box label must be in the taxonomy, or be added with --add-classes."""
    tax = ws.taxonomy
    unknown: list[str] = []
    for it in items:
        for lab in [it.label] + [b.label for b in it.boxes or []]:
            if lab is not None and not tax.is_known(lab) and lab not in unknown:
                unknown.append(lab)
    if unknown and not add_classes:
        raise UnknownClassError(
            f"unknown class{'es' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}. "
            f"Known classes: {', '.join(tax.all_labels)} (and 'background' for background-only "
            "images). Re-run with --add-classes to add them to the workspace taxonomy"
            + (
                ". With --format folders each sub-folder of PATH is a class: if PATH holds an "
                "annotation export instead (VOC, COCO, YOLO), name that --format."
                if fmt == "folders"
                else "."
            )
        )
    if unknown:
        ws.set_taxonomy(tax.with_classes(unknown))
    return unknown


def ingest(
    ws: Workspace,
    catalog: Catalog,
    path: str | Path,
    fmt: str,
    images_dir: str | Path | None = None,
    add_classes: bool = False,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    strict: bool = False,
    allow_missing: bool = False,
    follow_links: bool = False,
) -> IngestResult:
    """Catalog every image under ``path`` read as ``fmt``. Idempotent.

    ``strict``: refuse, before anything is written, when images would get no label.
    ``allow_missing``: catalog an export whose files mostly do not exist (as
    ``unreadable``) rather than refuse. ``follow_links``: follow symbolic links that
    leave a folder (``--format folders``) rather than skip them."""
    source = str(Path(path).expanduser().resolve())
    result = IngestResult(followed_links=follow_links)
    items = list(
        read(
            path,
            fmt,
            images_dir=images_dir,
            known_labels=ws.taxonomy.all_labels,
            skipped_links=result.skipped_links,
            follow_links=follow_links,
        )
    )
    if not allow_missing:
        check_found(items, path, images_dir)
    result.case_mapped = canonical_labels(ws, items)
    # No label and nothing said about boxes: an empty annotation (boxes == []) is a
    # negative the source meant, a folder's loose file is not.
    result.unlabelled = sum(it.label is None and it.boxes is None for it in items)
    if result.unlabelled:
        result.unlabelled_message = unlabelled_message(path, fmt, result.unlabelled, ws)
        if strict:
            raise WorkbenchError(f"nothing was cataloged (--strict): {result.unlabelled_message}")
    result.new_classes = check_labels(ws, items, add_classes, fmt)

    # Cheap pass: which files need reading at all?
    todo: list[tuple[ImportedImage, ImageRecord | None]] = []
    for it in items:
        rec = catalog.get_image_by_path(it.path)
        try:
            st = os.stat(it.path)
            unchanged_file = (
                rec is not None and rec.file_size == st.st_size and rec.mtime == st.st_mtime
            )
        except OSError:
            unchanged_file = False
        if unchanged_file:
            _update_existing(catalog, rec, it, result)
        else:
            todo.append((it, rec))
    total = len(items)
    done = total - len(todo)
    if on_progress:
        on_progress(done, total)

    phantoms = _Phantoms(catalog, source) if any(r is None for _, r in todo) else None
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        probes = pool.map(lambda t: _probe(t[0].path), todo)
        for (it, rec), pr in zip(todo, probes):
            if rec is None and not pr.error and phantoms is not None:
                rec = phantoms.take(it)
                if rec is not None:
                    result.found_missing += 1
            _store(catalog, it, rec, pr, fmt, source, result)
            fault_point("ingest.stored")
            done += 1
            if on_progress:
                on_progress(done, total)
    return result


def check_found(
    items: list[ImportedImage], path: str | Path, images_dir: str | Path | None
) -> None:
    """Refuse (``WorkbenchError``, nothing written) when fewer than
    ``MIN_FOUND_FRACTION`` of the files ``items`` name exist: the export was read
    against the wrong folder. Says which files, and where they would be found."""
    missing = [it.path for it in items if not os.path.exists(it.path)]
    total = len(items)
    if not missing or total - len(missing) >= MIN_FOUND_FRACTION * total:
        return
    base = Path(images_dir or (path if Path(path).is_dir() else Path(path).parent))
    shown = ", ".join(missing[:SHOWN_MISSING])
    hint = _where_found(missing, base.expanduser().resolve())
    where = f"--images {images_dir}" if images_dir else f"the export's folder {base}"
    raise WorkbenchError(
        f"only {total - len(missing)} of the {total} images {path} names exist under "
        f"{where} (at least {MIN_FOUND_FRACTION:.0%} must); nothing was cataloged. "
        f"Missing, e.g.: {shown}. "
        + (
            f"Did you mean --images {shlex.quote(_shown(hint))}? (they are there) Or pass "
            if hint
            else "Pass --images with the folder the export's file names are relative to, or "
        )
        + "--allow-missing to catalog them anyway (as unreadable)."
    )


def _shown(folder: Path) -> str:
    """``folder`` relative to the working folder when inside it (as a user types it)."""
    rel = os.path.relpath(folder)
    return rel if not rel.startswith("..") else str(folder)


def _where_found(missing: list[str], base: Path) -> Path | None:
    """The parent of ``base``, or one of its sub-folders, under which most of (a sample
    of) the ``missing`` files exist with the same relative path; None when neither."""
    sample = [Path(p) for p in missing[:50]]
    rel = [p.relative_to(base) for p in sample if p.is_relative_to(base)]
    if not rel:
        return None
    try:
        children = sorted(d for d in base.iterdir() if d.is_dir())
    except OSError:
        children = []
    for cand in [base.parent, *children]:
        if sum((cand / r).is_file() for r in rel) * 2 > len(rel):
            return cand
    return None


class _Phantoms:
    """Rows of one export recorded ``unreadable`` because their file was missing, and
    still missing: a later ingest of the export that finds the file takes the row
    (``take``) instead of adding a second one."""

    def __init__(self, catalog: Catalog, source: str):
        self.rows = [
            r
            for r in catalog.images(status="unreadable")
            if r.source == source
            and MISSING_REASON in (r.status_reason or "")
            and not os.path.exists(r.path)
        ]

    def take(self, it: ImportedImage) -> ImageRecord | None:
        ref = (it.extra or {}).get("reference")
        if not ref or not self.rows:
            return None
        tail = os.sep + os.path.normpath(ref).lstrip(os.sep)
        for i, r in enumerate(self.rows):
            if r.path.endswith(tail):
                return self.rows.pop(i)
        return None


def _update_existing(
    catalog: Catalog, rec: ImageRecord, it: ImportedImage, result: IngestResult
) -> None:
    """A known, unchanged file: take new label/boxes from the source if it has them."""
    changes = {}
    if it.label is not None and rec.label != it.label and rec.label is None:
        changes["label"] = it.label
    boxes_changed = False
    if it.boxes is not None and rec.status != "unreadable":
        boxes, dropped = _clip_boxes(it.boxes, rec.width, rec.height)
        current = [b for b in catalog.boxes_for(rec.id) if b.source == "import"]
        if not _same_boxes(current, boxes) or not rec.annotated:
            with catalog.atomic():
                catalog.replace_boxes(rec.id, boxes, source="import")
                if changes:
                    catalog.update_image(rec.id, **changes)
            result.boxes_added += len(boxes)
            result.boxes_dropped += dropped
            boxes_changed = True
    if changes and not boxes_changed:
        catalog.update_image(rec.id, **changes)
    if changes or boxes_changed:
        result.updated += 1
    else:
        result.unchanged += 1


def _store(
    catalog: Catalog,
    it: ImportedImage,
    rec: ImageRecord | None,
    pr: _Probe,
    fmt: str,
    source: str,
    result: IngestResult,
) -> None:
    if pr.error:
        result.unreadable.append((it.path, pr.error))
    if rec is not None:
        # Same path, file changed on disk (or a missing file's row, found at this path):
        # refresh what we know of it.
        fields = dict(
            sha256=pr.sha256, file_size=pr.size, mtime=pr.mtime, width=pr.width, height=pr.height
        )
        if rec.path != it.path:
            fields["path"] = it.path
        if pr.error:
            fields.update(status="unreadable", status_reason=pr.error)
        elif rec.status == "unreadable":
            fields.update(status="active", status_reason=None)
        with catalog.atomic():
            catalog.update_image(rec.id, **fields)
            if pr.sha256 != rec.sha256:
                catalog.forget_image_hashes([rec.id])  # cached perceptual hashes are stale
            if it.boxes is not None and not pr.error:
                boxes, dropped = _clip_boxes(it.boxes, pr.width, pr.height)
                catalog.replace_boxes(rec.id, boxes, source="import")
                result.boxes_added += len(boxes)
                result.boxes_dropped += dropped
        result.updated += 1
        return
    if pr.sha256:
        for old in catalog.images_by_sha256(pr.sha256):
            if not Path(old.path).exists():
                # The same bytes under a new path: the user moved the file.
                catalog.update_image(old.id, path=it.path, file_size=pr.size, mtime=pr.mtime)
                result.moved += 1
                return
    boxes = None
    if it.boxes is not None:
        # An unreadable image keeps its annotation as given (nothing is lost); it is
        # out of training and export by its status, not by dropping data.
        boxes, dropped = (
            _clip_boxes(it.boxes, pr.width, pr.height) if not pr.error else (it.boxes, 0)
        )
        result.boxes_added += len(boxes)
        result.boxes_dropped += dropped
        if pr.error:
            result.boxes_unreadable += len(boxes)
    catalog.add_image(
        ImageRecord(
            id=None,
            path=it.path,
            sha256=pr.sha256,
            file_size=pr.size,
            mtime=pr.mtime,
            width=pr.width,
            height=pr.height,
            label=it.label,
            status="unreadable" if pr.error else "active",
            status_reason=pr.error,
            source_format=fmt,
            source=source,
        ),
        boxes=boxes,
    )
    result.added += 1
    result.added_unreadable += bool(pr.error)
