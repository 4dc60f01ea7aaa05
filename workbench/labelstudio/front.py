"""Put chosen images at the front of the annotators' queue (`wb review send`).

Images without a task in the workspace's project are pushed first (``push(only=...)``:
never a second task for an image). Then every sent task's prediction of the
project's model version gets a score below every other score of that version, in
the order given, and the project uses uncertainty sampling: Label Studio 1.23's
``GET /api/projects/{id}/next`` hands out the unsolved task whose prediction of
``project.model_version`` has the LOWEST score (see ``ordering.py`` and
notes/label-studio.md).

Scores: the n sent images get ``base - n, ..., base - 1`` where ``base`` is the
lowest score of that version already in the project (0 when none is negative), so
what `wb prioritize` wrote (0..1) keeps its order behind them, and a later send
goes before an earlier one. Negative scores mark "sent by a reviewer"; the next
`wb prioritize` rewrites every prioritised task's score and so ends the override.

The scores (``ordering.front_scores``) are written by ``ordering.write_scores``, as `wb
prioritize` writes its own.

Two details Label Studio decides:

- a prediction of the current version WITHOUT a score sorts before every score on
  SQLite (NULLs first; PostgreSQL puts them last): such predictions of other tasks
  get ``1.0`` (asked last), the way PostgreSQL already orders them;
- a task that is already annotated is not handed out by ``/next`` whatever its
  score: those are reported, not changed (reopen them from the Data Manager).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import WorkbenchError
from .client import Connection, LabelStudioClient
from .ordering import (
    UNCERTAINTY_SAMPLING,
    front_scores,
    use_uncertainty_sampling,
    version_predictions,
    write_scores,
)
from .project import Project
from .push import push
from .tasks import SuspectMarker, is_suspect_text, mark_suspects

log = logging.getLogger(__name__)

# model version of the (box-less) predictions that carry the order when the
# workspace has no model yet
NO_MODEL_VERSION = "wb-review-send"
UNSCORED = 1.0  # what an unscored prediction of the current version becomes
NOTE_FIELD = "model_hint"  # the task field the label config shows as a header


@dataclass
class SentImage:
    image_id: int
    task_id: int
    score: float


@dataclass
class SendResult:
    project_id: int
    project_url: str
    model_version: str
    sent: list[SentImage] = field(default_factory=list)  # in queue order
    pushed: int = 0  # tasks created now
    moved: int = 0  # images that already had a task
    predictions_created: int = 0
    scores_updated: int = 0
    unscored_lifted: int = 0  # other tasks' unscored predictions set to UNSCORED
    noted: int = 0  # sent tasks whose header now carries a note
    marked: int = 0  # sent tasks whose prediction now marks suspect boxes
    marked_boxes: int = 0  # suspect boxes marked, over those tasks
    left_out: dict[int, str] = field(default_factory=dict)  # image id -> why
    already_annotated: list[int] = field(default_factory=list)  # image ids
    warnings: list[str] = field(default_factory=list)

    @property
    def first_image_id(self) -> int | None:
        return self.sent[0].image_id if self.sent else None

    def as_dict(self) -> dict:
        return {
            "project_id": self.project_id,
            "project_url": self.project_url,
            "model_version": self.model_version,
            "sent": [s.__dict__ for s in self.sent],
            "pushed": self.pushed,
            "moved": self.moved,
            "predictions_created": self.predictions_created,
            "scores_updated": self.scores_updated,
            "unscored_lifted": self.unscored_lifted,
            "noted": self.noted,
            "marked": self.marked,
            "marked_boxes": self.marked_boxes,
            "left_out": [{"image_id": i, "reason": r} for i, r in self.left_out.items()],
            "already_annotated": self.already_annotated,
            "warnings": self.warnings,
        }


def send_to_front(
    ws,
    catalog,
    client: LabelStudioClient,
    conn: Connection,
    image_ids: list[int],
    on_progress: Callable[[int, int], None] | None = None,
    notes: dict[int, str] | None = None,
    markers: dict[int, list[SuspectMarker]] | None = None,
) -> SendResult:
    """Put ``image_ids`` (in this order) at the front of the workspace project's queue.
    ``notes``: image id -> a line the annotator reads above the image (the task's
    ``model_hint`` header), e.g. which boxes `wb review errors` suspects. ``markers``:
    image id -> suspect boxes drawn into the task's prediction of the project's model
    version (``mark_suspects``): the labelling page shows only predictions of
    ``project.model_version``, so that prediction is where the annotator sees them."""
    order = list(dict.fromkeys(int(i) for i in image_ids))
    records = {im.id: im for im in catalog.images(ids=order)}
    left_out = {}
    for i in order:
        im = records.get(i)
        if im is None:
            left_out[i] = "not in the catalog (rebuild the review dataset: `wb review --no-launch`)"
        elif im.status != "active":
            left_out[i] = f"status '{im.status}' in the catalog (only active images are annotated)"
    order = [i for i in order if i not in left_out]
    if not order:
        why = "; ".join(f"image {i}: {r}" for i, r in left_out.items()) or "no images given"
        raise WorkbenchError(f"nothing to send to Label Studio ({why})")

    # sent to be annotated again: into the queue, not in as already annotated
    pushed = push(
        ws, catalog, client, conn, level=ws.project_level(), only=order, truth_as_annotations=False
    )
    project = Project.of(ws, client, conn)
    pid = project.id
    tasks = catalog.ls_task_map(pid)
    missing = [i for i in order if i not in tasks]
    if missing:  # push records every task it creates; this would be a bug
        raise WorkbenchError(
            f"images {missing[:5]} have no task in project {pid} after the push; "
            "run `wb push` and send again"
        )

    current = client.get_project(pid)
    promoted = catalog.promoted_model()
    version = current.model_version or (promoted.version if promoted else None) or NO_MODEL_VERSION
    result = SendResult(
        pid,
        pushed.project_url,
        version,
        pushed=pushed.created,
        moved=len(order) - pushed.created,
        left_out=left_out,
    )

    ours = version_predictions(project, version)
    sent_tasks = {tasks[i] for i in order}
    existing = [
        float(p.score)
        for t, ps in ours.items()
        if t not in sent_tasks
        for p in ps
        if p.score is not None
    ]
    scores = front_scores(order, existing)
    # the model's real boxes are recorded (push need not add them again); box-less ones not
    written = write_scores(
        project,
        catalog,
        version,
        scores,
        existing=ours,
        record_boxless=False,
        on_progress=on_progress,
    )
    result.predictions_created, result.scores_updated = written.created, written.updated
    result.sent = [SentImage(i, tasks[i], scores[i]) for i in order]
    for i in order:
        if notes and notes.get(i):
            client.update_task_data(tasks[i], {NOTE_FIELD: notes[i]})
            result.noted += 1
    if markers:
        todo = {tasks[i]: (i, markers[i]) for i in order if markers.get(i)}
        _mark(project, catalog, version, todo, result)

    for task_id, preds in ours.items():
        if task_id in sent_tasks:
            continue
        for pred in preds:
            if pred.score is None:
                client.update_prediction(int(pred.id), score=UNSCORED)
                result.unscored_lifted += 1

    if (
        use_uncertainty_sampling(project, version, current)
        and current.sampling != UNCERTAINTY_SAMPLING
    ):
        result.warnings.append(
            f"project {pid} now uses uncertainty sampling (it used "
            f"'{current.sampling}'): the queue follows prediction scores"
        )

    by_task = {tasks[i]: i for i in order}
    for task in client.iter_tasks(pid, include="id,is_labeled", page_size=1000):
        if task.id in by_task and getattr(task, "is_labeled", False):
            result.already_annotated.append(by_task[task.id])
    if result.already_annotated:
        result.warnings.append(
            f"{len(result.already_annotated)} of the sent images are already annotated in Label "
            "Studio, so its queue does not hand them out again; reopen them from the Data Manager "
            f"(images {', '.join(map(str, result.already_annotated[:10]))})"
        )
    log.info(
        "sent %d images to the front of project %s (model version %s)",
        len(result.sent),
        pid,
        version,
    )
    return result


def _mark(project: Project, catalog, version: str, todo: dict, result: SendResult) -> None:
    """Draw each task's suspect boxes into its prediction of ``version`` (task id ->
    (image id, markers)); a re-send replaces the markers of the last one."""
    preds = version_predictions(project, version)
    images = {im.id: im for im in catalog.images(ids=[i for i, _ in todo.values()])}
    for task_id, (image_id, marks) in todo.items():
        if not preds.get(task_id):  # write_scores gives every sent active task one
            result.warnings.append(f"task {task_id} has no prediction of {version} to mark")
            continue
        pred = preds[task_id][0]
        before = [
            r if isinstance(r, dict) else r.model_dump()
            for r in (getattr(pred, "result", None) or [])
        ]
        after = mark_suspects(
            images[image_id],
            before,
            marks,
            project.classes,
            project.level,
            project.taxonomy,
            project.mapping,
        )
        if after != before:
            project.client.update_prediction(int(pred.id), result=after)
        result.marked += 1
        result.marked_boxes += sum(1 for r in after if is_suspect_text(r))
