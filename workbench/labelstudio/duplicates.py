"""Label Studio tasks that repeat an image: found by `wb push`, and removed when that
loses nothing.

Two pushes at once (before the workspace lock) or an import by hand can give one image
a second task, so annotators would label the photo twice. Every task `wb push` makes
carries the catalog image id (``IMAGE_ID_FIELD``), so the one paged listing of task ids
and image ids that push's reconciliation already does finds them; only the annotated
tasks among the repeats are read whole.

Per image, the task kept is the one with annotations of its own, else one with any
annotation, else the oldest (lowest id). Each other task is removed unless it has
annotations of its own: boxes that neither the kept task nor the catalog holds. An
annotation that repeats them (the ground truth `wb push` sent with the task, pressed
Update unchanged) is no loss. A duplicate with its own annotations is never deleted:
it is named, for a person to compare and delete in Label Studio.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

from ..catalog.records import Box
from .project import Project
from .tasks import IMAGE_ID_FIELD, result_boxes, same_boxes, to_class

log = logging.getLogger(__name__)

READ_CHUNK = 100  # task ids per listing of annotated repeats (they go into the URL)
DELETE_CHUNK = 500  # task ids per "delete_tasks" action


@dataclass(frozen=True)
class TaskRow:
    """A task as the id listing shows it."""

    task_id: int
    annotations: int | None  # submitted and skipped (None: the listing did not say)
    model_version: str | None = None


@dataclass
class DuplicateTask:
    image_id: int
    task_id: int
    kept_task: int  # the image's task that stays
    annotations: int
    own: bool  # has boxes neither the kept task nor the catalog holds: never deleted


@dataclass
class Duplicates:
    """The repeated tasks of a project: ``removable`` go, ``annotated`` stay and are
    named; ``kept``: image id -> the task that stays."""

    kept: dict[int, TaskRow] = field(default_factory=dict)
    removable: list[DuplicateTask] = field(default_factory=list)
    annotated: list[DuplicateTask] = field(default_factory=list)
    removed: int = 0

    @property
    def found(self) -> int:
        return len(self.removable) + len(self.annotated)

    def to_dict(self) -> dict:
        return {
            "found": self.found,
            "removed": self.removed,
            "removable": [asdict(d) for d in self.removable],
            "kept_with_own_annotations": [asdict(d) for d in self.annotated],
        }


def find_duplicates(project: Project, catalog, tasks_by_image: dict[int, list[TaskRow]]):
    """Decide, for every image with more than one task, which one stays and which go."""
    out = Duplicates()
    repeated = {i: rows for i, rows in tasks_by_image.items() if len(rows) > 1}
    for image_id, rows in tasks_by_image.items():
        if image_id not in repeated:
            out.kept[image_id] = rows[0]
    if not repeated:
        return out
    annotated = [r.task_id for rows in repeated.values() for r in rows if r.annotations != 0]
    boxes = _annotation_boxes(project, catalog, annotated)

    def own(row: TaskRow, others: list[list[Box]]) -> bool:
        """Some annotation of ``row`` is a skip, or has boxes none of ``others`` holds.
        Annotations counted but not read back count as its own too: kept, to be safe."""
        read = boxes.get(row.task_id)
        if row.annotations and not read:
            return True
        return any(
            b is None or not any(same_boxes(b, other) for other in others) for b in read or []
        )

    for image_id, rows in repeated.items():
        truth = _truth(project, catalog, image_id)

        base = [truth] if truth is not None else []
        alone = {r.task_id: own(r, base) for r in rows}  # against the catalog only
        keep = min(
            rows,
            key=lambda r: (
                not alone[r.task_id],
                not (r.annotations or boxes.get(r.task_id)),
                r.task_id,
            ),
        )
        out.kept[image_id] = keep
        others = base + [b for b in boxes.get(keep.task_id, []) if b is not None]
        for r in rows:
            if r is keep:
                continue
            n = r.annotations if r.annotations is not None else len(boxes.get(r.task_id, []))
            d = DuplicateTask(image_id, r.task_id, keep.task_id, n, own(r, others))
            (out.annotated if d.own else out.removable).append(d)
    if out.found:
        log.info(
            "project %s: %d tasks repeat an image that has another task (%d removable, %d "
            "with annotations of their own)",
            project.id,
            out.found,
            len(out.removable),
            len(out.annotated),
        )
    return out


def remove_duplicates(project: Project, catalog, duplicates: Duplicates) -> int:
    """Delete the removable repeats in Label Studio (a few bulk requests) and forget
    them and the annotations recorded of them; returns how many were removed."""
    ids = [d.task_id for d in duplicates.removable]
    for start in range(0, len(ids), DELETE_CHUNK):
        chunk = ids[start : start + DELETE_CHUNK]
        project.client.delete_tasks(project.id, chunk)
        catalog.forget_ls_tasks(project.id, chunk)
        catalog.forget_ls_annotations(project.id, chunk)
        duplicates.removed += len(chunk)
    return duplicates.removed


def _annotation_boxes(project: Project, catalog, task_ids: list[int]) -> dict[int, list]:
    """task id -> the boxes of each of its annotations (a skip: None), for the tasks
    read back; one listing per ``READ_CHUNK`` tasks."""
    out: dict[int, list[list[Box]]] = {}
    sizes = {}
    for start in range(0, len(task_ids), READ_CHUNK):
        chunk = task_ids[start : start + READ_CHUNK]
        query = json.dumps({"selectedItems": {"all": False, "included": chunk}})
        for task in project.client.iter_tasks(
            project.id, fields="all", page_size=READ_CHUNK, query=query
        ):
            image_id = (task.data or {}).get(IMAGE_ID_FIELD)
            if image_id is not None and image_id not in sizes:
                im = catalog.get_image(int(image_id))
                sizes[image_id] = (im.width, im.height) if im else (None, None)
            size = sizes.get(image_id, (None, None))
            out.setdefault(task.id, [])  # read: an empty list is "no annotations"
            for a in task.annotations or []:
                a = a if isinstance(a, dict) else a.dict()
                if a.get("was_cancelled"):
                    out.setdefault(task.id, []).append(None)  # a skip: a person's word
                    continue
                out.setdefault(task.id, []).append(result_boxes(a.get("result") or [], *size))
    return out


def _truth(project: Project, catalog, image_id: int) -> list[Box] | None:
    """The catalog's boxes of an annotated image at the project's level (None: none, or
    one has no class there)."""
    image = catalog.get_image(image_id)
    if image is None or not image.annotated:
        return None
    out = []
    for b in catalog.boxes_for(image_id):
        label = to_class(b.label, project.classes, project.level, project.taxonomy)
        if label is None:
            return None
        out.append(Box(label=label, x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2))
    return out
