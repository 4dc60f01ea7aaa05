"""`wb pull`: Label Studio annotations -> ground-truth boxes in the catalog.

Policy: per task, the latest submitted (not skipped) annotation wins; other
submitted annotations that disagree with it are reported. A submitted annotation
with no boxes makes the image a negative. Each task is applied in one
transaction, and only when its annotations changed since the last pull, so a
re-run changes nothing and an interrupted pull finishes on the next run.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..catalog.records import Box, LsAnnotation
from ..errors import WorkbenchError
from .client import LabelStudioClient, LabelStudioRequestError
from .tasks import IMAGE_ID_FIELD, boxes_agree, result_boxes, same_boxes, to_class

log = logging.getLogger(__name__)

ANNOTATED_TASKS_QUERY = json.dumps(
    {
        "filters": {
            "conjunction": "or",
            "items": [
                {
                    "filter": "filter:tasks:total_annotations",
                    "operator": "greater",
                    "type": "Number",
                    "value": 0,
                },
                {
                    "filter": "filter:tasks:cancelled_annotations",
                    "operator": "greater",
                    "type": "Number",
                    "value": 0,
                },
            ],
        }
    }
)


@dataclass
class Disagreement:
    image_id: int | None
    task_id: int
    chosen_annotation: int
    chosen_annotator: str | None
    others: list[dict]  # [{"annotation_id", "annotator", "n_boxes"}]


@dataclass
class PullResult:
    project_id: int
    tasks: int = 0  # tasks in the project
    annotated_tasks: int = 0  # with a submitted annotation
    updated_images: int = 0  # ground truth written now
    negatives: int = 0  # of those: submitted with no boxes
    cleared: int = 0  # annotations deleted in Label Studio: their boxes removed
    skipped: int = 0  # tasks only skipped by annotators
    unchanged: int = 0
    boxes: int = 0  # boxes written now
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def project_id_of(ws) -> int:
    pid = ws.get("labelstudio", "project_id")
    if pid is None:
        raise WorkbenchError("this workspace has no Label Studio project yet; run `wb push` first")
    return int(pid)


def pull(
    ws,
    catalog,
    client: LabelStudioClient,
    *,
    page_size: int = 200,
    on_progress: Callable[[int, int], None] | None = None,
) -> PullResult:
    project_id = project_id_of(ws)
    total = client.task_count(project_id)  # ProjectMissing when deleted there
    try:
        users = client.users()
    except LabelStudioRequestError:  # a token without the right to list users
        users = {}
    image_of_task = {t: i for i, t in catalog.ls_task_map(project_id).items()}
    images = {im.id: im for im in catalog.images()}
    stored = catalog.ls_annotations(project_id)
    result = PullResult(project_id=project_id)
    level = ws.get("labelstudio", "project_level") or ws.get("model", "level", "species")
    taxonomy = ws.taxonomy
    classes = taxonomy.classes(level)

    def truth_of(image_id: int) -> list[Box] | None:
        """The image's boxes at the project's level (None: some have no class there)."""
        out = []
        for b in catalog.boxes_for(image_id):
            label = to_class(b.label, classes, level, taxonomy)
            if label is None:
                return None
            out.append(Box(label=label, x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2))
        return out

    seen: set[int] = set()
    if on_progress:
        on_progress(0, total)
    result.tasks = total
    done = 0
    # Only tasks with annotations (or skips) are listed: ~100x faster than listing all
    # (20,000 tasks: 0.6 s against 60 s). A task with recorded annotations that is not
    # listed has none left, and is cleared below.
    for task in client.iter_tasks(
        project_id, fields="all", page_size=page_size, query=ANNOTATED_TASKS_QUERY
    ):
        seen.add(task.id)
        done += 1
        image_id = image_of_task.get(task.id)
        if image_id is None:
            data_id = (task.data or {}).get(IMAGE_ID_FIELD)
            image_id = int(data_id) if data_id is not None and int(data_id) in images else None
        anns = [_annotation(a, task.id, image_id, users) for a in (task.annotations or [])]
        _apply(
            catalog,
            project_id,
            task.id,
            image_id,
            images.get(image_id),
            anns,
            stored.get(task.id, []),
            result,
            truth_of,
        )
        if on_progress and done % page_size == 0:
            on_progress(done, total)
    for task_id in set(stored) - seen:  # annotations (or the task) deleted there
        prev = stored[task_id]
        image_id = prev[0].image_id if prev else None
        _apply(catalog, project_id, task_id, image_id, images.get(image_id), [], prev, result)
    if on_progress:
        on_progress(total, total)
    return result


def _apply(
    catalog,
    project_id: int,
    task_id: int,
    image_id: int | None,
    image,
    anns: list[LsAnnotation],
    previous: list[LsAnnotation],
    result: PullResult,
    truth_of: Callable[[int], list[Box] | None] | None = None,
) -> None:
    submitted = [a for a in anns if not a.was_cancelled]
    chosen = (
        max(submitted, key=lambda a: (a.updated_at or "", a.annotation_id)) if submitted else None
    )
    for a in anns:
        a.chosen = a is chosen
    if chosen is not None:
        result.annotated_tasks += 1
    elif anns:
        result.skipped += 1

    boxes = None
    if chosen is not None:
        width = image.width if image else None
        height = image.height if image else None
        boxes = result_boxes(chosen.result, width, height)
        for b in boxes:
            b.annotator, b.annotation_id = chosen.annotator, chosen.annotation_id
        others = []
        for a in submitted:
            if a is not chosen and not boxes_agree(boxes, result_boxes(a.result, width, height)):
                others.append(
                    {
                        "annotation_id": a.annotation_id,
                        "annotator": a.annotator,
                        "n_boxes": a.n_boxes,
                    }
                )
        if others:
            result.disagreements.append(
                Disagreement(image_id, task_id, chosen.annotation_id, chosen.annotator, others)
            )

    if _signature(anns) == _signature(previous):
        if anns:
            result.unchanged += 1
        return
    had_truth = any(a.chosen for a in previous)
    if (
        boxes is not None
        and image is not None
        and image.annotated
        and truth_of is not None
        and same_boxes(boxes, truth_of(image.id))
    ):
        # The annotation says what the catalog already holds (e.g. boxes from an import,
        # pushed as an annotation and left as they were): keep the catalog's boxes, with
        # their source and finer labels, and only record the annotation. When that truth
        # did not come from this project, no annotation is marked as its source, so that
        # deleting the annotation in Label Studio takes nothing away either.
        if not had_truth:
            for a in anns:
                a.chosen = False
        catalog.apply_ls_task(project_id, task_id, image_id, anns, None, update_truth=False)
        result.unchanged += 1
        return
    if chosen is None and not had_truth:
        # nothing to write: only record what was seen (skips, or nothing at all)
        catalog.apply_ls_task(project_id, task_id, image_id, anns, None, update_truth=False)
        return
    catalog.apply_ls_task(project_id, task_id, image_id, anns, boxes)
    if image_id is None:
        log.warning("task %s has no catalog image (not pushed by this workspace); ignored", task_id)
        return
    if boxes is None:
        result.cleared += 1
    else:
        result.updated_images += 1
        result.boxes += len(boxes)
        if not boxes:
            result.negatives += 1


def _signature(anns: list[LsAnnotation]) -> list[tuple]:
    return sorted((a.annotation_id, a.updated_at, a.was_cancelled) for a in anns)


def _annotation(a: Any, task_id: int, image_id: int | None, users: dict[int, str]) -> LsAnnotation:
    a = a if isinstance(a, dict) else a.dict()
    result = a.get("result") or []
    user = a.get("completed_by")
    if isinstance(user, dict):
        user = user.get("id")
    annotator = users.get(user) if user is not None else None
    if annotator is None:
        # " admin@example.com, 1": Label Studio's "email, id"
        m = re.match(r"\s*(.*?),\s*\d+\s*$", a.get("created_username") or "")
        annotator = (
            m.group(1) if m and m.group(1) else (f"user:{user}" if user is not None else None)
        )
    return LsAnnotation(
        annotation_id=int(a["id"]),
        task_id=task_id,
        image_id=image_id,
        annotator=annotator,
        updated_at=str(a.get("updated_at") or a.get("created_at") or ""),
        was_cancelled=bool(a.get("was_cancelled")),
        n_boxes=sum(1 for r in result if r.get("type") == "rectanglelabels"),
        chosen=False,
        result=result,
    )


def export_coco(ws, catalog, out: str | Path, level: str | None = None) -> tuple[Path, int]:
    """Write the images annotated through this project (with all their boxes) as COCO."""
    from ..formats import ExportItem, write

    project_id = project_id_of(ws)
    level = level or ws.get("labelstudio", "project_level") or ws.get("model", "level", "species")
    pushed = catalog.ls_task_map(project_id)
    chosen = {
        a.image_id
        for anns in catalog.ls_annotations(project_id).values()
        for a in anns
        if a.chosen and a.image_id is not None
    }
    images = [im for im in catalog.images(ids=pushed) if im.annotated and im.id in chosen]
    boxes = catalog.boxes_by_image([im.id for im in images])
    items = [
        ExportItem(
            path=im.path,
            width=im.width,
            height=im.height,
            label=im.label,
            boxes=boxes.get(im.id, []),
        )
        for im in images
    ]
    path = write("coco", out, items, ws.taxonomy.classes(level))
    return path, len(items)
