"""`wb agreement send` / `wb agreement pull`: tasks the annotators disagree on go to an expert.

As `wb dedup adjudicate` routes conflict groups to an adjudication project, disagreements
(``agreement.AgreementReport.disagreements``) go to an EXPERT REVIEW project, separate from
the labelling project, with the labelling project's label config: one task per image
(recorded in ``ls_tasks`` with ``kind = 'review'``), each annotator's boxes pre-drawn as a
prediction named after them. The expert corrects one version (or draws anew) and submits.

`wb agreement pull` brings the experts' answers back through `wb pull`'s own rules
(``pull.pull`` on the review project): the latest submitted answer becomes the image's
ground truth, a re-run changes nothing, a deleted answer clears what it wrote. An image
is sent once; re-sending skips it, and tasks Label Studio holds that the catalog has not
recorded (an interrupted send) are matched back by image id first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..errors import WorkbenchError
from .agreement import AgreementReport, latest_by_annotator
from .client import ProjectMissing
from .config import detection_config
from .project import Project
from .pull import PullResult, latest_annotation, pull
from .push import LISTED_FIELDS, ensure_storages
from .tasks import IMAGE_ID_FIELD, build_task

log = logging.getLogger(__name__)

REVIEW_KIND = "review"  # ls_tasks.kind of an expert review task
PROJECT_KEY = "expert_review_project_id"  # [labelstudio] in workbench.toml


class NoExpertReview(WorkbenchError):
    """Nothing was sent to expert review yet."""


@dataclass
class ExpertSendResult:
    project_id: int
    project_url: str
    new_project: bool = False
    sent: int = 0  # tasks imported now
    already: int = 0  # disagreements sent before
    reconciled: int = 0  # tasks found in Label Studio but not recorded
    task_ids: dict[int, int] = field(default_factory=dict)  # image id -> review task id

    def to_dict(self) -> dict:
        return asdict(self)


def expert_review_project_id(ws) -> int | None:
    """The expert review project `wb agreement send` created, or None before it."""
    pid = ws.get("labelstudio", PROJECT_KEY)
    return None if pid is None else int(pid)


def require_expert_review(ws) -> int:
    """The expert review project's id; ``NoExpertReview`` before the first send."""
    pid = expert_review_project_id(ws)
    if pid is None:
        raise NoExpertReview(
            "nothing was sent to expert review yet: run `wb agreement send` first (it sends "
            "the tasks whose agreement is below --threshold)"
        )
    return pid


def review_project(project: Project, project_id: int) -> Project:
    """The expert review project as a ``Project``: the labelling project's client,
    level, classes and label mapping, another id."""
    return Project(
        project.client,
        project.conn,
        project_id,
        project.level,
        project.taxonomy,
        project.label_map,
        project.external,
    )


def _ensure_project(ws, catalog, project: Project, new_project: bool) -> tuple[int, bool]:
    client = project.client
    pid = expert_review_project_id(ws)
    if pid is not None and not new_project:
        try:
            client.get_project(pid)
        except ProjectMissing:
            raise ProjectMissing(
                f"the expert review project {pid} no longer exists in Label Studio at "
                f"{client.url}. Run `wb agreement send --new-project` to create a new one "
                "and send the disagreements again."
            ) from None
        return pid, False
    if pid is not None:
        catalog.forget_ls_project(pid)
    config = (
        client.get_project(project.id).label_config
        if project.external
        else detection_config(project.classes)
    )
    created = client.create_project(
        f"{ws.name}: expert review",
        config,
        description=f"workbench {ws.name}: tasks the annotators of project {project.id} "
        "disagree on; each annotator's boxes are under Predictions (`wb agreement send`)",
    )
    ws.set("labelstudio", PROJECT_KEY, int(created.id))
    return int(created.id), True


def send_disagreements(
    ws,
    catalog,
    project: Project,
    report: AgreementReport,
    *,
    new_project: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExpertSendResult:
    """Send the report's disagreements to the expert review project (never twice)."""
    todo = [t for t in report.disagreements if t.image_id is not None]
    pid, created = _ensure_project(ws, catalog, project, new_project)
    client = project.client
    result = ExpertSendResult(pid, f"{project.conn.url}/projects/{pid}", new_project=created)
    recorded = catalog.ls_task_map(pid, kind=REVIEW_KIND)
    if todo and not created:  # an interrupted send: tasks there, not recorded here
        found = []
        for task in client.iter_tasks(pid, fields=LISTED_FIELDS):
            image_id = (task.data or {}).get(IMAGE_ID_FIELD)
            if image_id is not None and int(image_id) not in recorded:
                found.append((int(image_id), task.id, None))
                recorded[int(image_id)] = task.id
        if found:
            catalog.record_ls_tasks(pid, found, kind=REVIEW_KIND)
            result.reconciled = len(found)
    stored = catalog.ls_annotations(project.id)
    images = {im.id: im for im in catalog.images(ids={t.image_id for t in todo})}
    new = [t for t in todo if t.image_id not in recorded]
    result.already = len(todo) - len(new)
    if new:
        document_root = project.conn.served_root()
        ensure_storages(client, pid, [images[t.image_id].path for t in new], document_root)
    mapping = project.mapping if project.external else None
    for done, t in enumerate(new, start=1):
        image = images[t.image_id]
        task = build_task(
            image,
            document_root,
            project.classes,
            project.level,
            project.taxonomy,
            mapping=mapping,
        )
        versions = latest_by_annotator(stored.get(t.task_id, []))
        agreement = "n/a" if t.score is None else f"{t.score:.2f}"
        task["data"]["model_hint"] = (
            f"Annotators disagree (agreement {agreement}, task {t.task_id} of project "
            f"{project.id}): each one's boxes are under Predictions; submit the right boxes"
        )
        task["data"]["model_version"] = ""
        task["predictions"] = [
            {"model_version": f"annotator {name}", "result": a.result}
            for name, a in sorted(versions.items())
        ]
        (task_id,) = client.import_tasks(pid, [task])
        catalog.record_ls_tasks(pid, [(image.id, task_id, None)], kind=REVIEW_KIND)
        recorded[image.id] = task_id
        result.sent += 1
        if on_progress:
            on_progress(done, len(new))
    result.task_ids = {t.image_id: recorded[t.image_id] for t in todo}
    log.info("expert review: %d sent, %d sent before", result.sent, result.already)
    return result


def pull_expert_answers(
    ws,
    catalog,
    project: Project,
    on_progress: Callable[[int, int], None] | None = None,
) -> PullResult:
    """The experts' submitted answers -> ground truth, by `wb pull`'s rules."""
    pid = require_expert_review(ws)
    return pull(review_project(project, pid), catalog, on_progress=on_progress, record=False)


def expert_status(ws, catalog) -> dict[int, dict]:
    """image id -> {"task_id", "reviewed_by"} of the images sent to expert review
    (``reviewed_by``: the annotator whose answer is the truth now, None while waiting)."""
    pid = expert_review_project_id(ws)
    if pid is None:
        return {}
    out = {
        i: {"task_id": t, "reviewed_by": None}
        for i, t in catalog.ls_task_map(pid, REVIEW_KIND).items()
    }
    for anns in catalog.ls_annotations(pid).values():
        answer = latest_annotation([a for a in anns if not a.was_cancelled])
        if answer is not None and answer.image_id in out:
            out[answer.image_id]["reviewed_by"] = (
                answer.annotator or f"annotation {answer.annotation_id}"
            )
    return out
