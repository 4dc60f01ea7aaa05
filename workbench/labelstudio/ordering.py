"""Make Label Studio hand annotators the images the model is least sure of first.

What Label Studio 1.23 honours (see notes/label-studio.md, and
``projects/functions/next_task.py`` in its source): with ``sampling = "Uncertainty
sampling"``, ``GET /api/projects/{id}/next`` returns the unlocked, unsolved task whose
prediction of the project's ``model_version`` has the LOWEST ``score``. Two traps:

- tasks whose predictions carry another ``model_version`` are not considered, and
  when no task has one of the project's version it silently samples at random: the
  project's ``model_version`` is set to the prioritised version here;
- a Data Manager tab with filters or ordering takes over from sampling for annotators
  who start from that tab (the "Label All Tasks" button uses the default queue).

Scores: with the ``uncertainty`` strategy a task's prediction scores ``1 -
uncertainty`` (exactly what `wb push` writes for prioritised images). With ``diverse``
or ``random`` the selected batch must come first although it is not the top of the
uncertainty ranking: the batch's tasks score ``0.5 * position / batch size`` (in batch
order) and every other task ``0.5 + (1 - uncertainty) / 2``, so the order inside each
part still follows the same rule.

Every score policy (``annotation_scores`` for `wb prioritize`, ``front_scores`` for `wb
review send` and for the field photos `wb push` puts first (``field_photos_first``), and
`wb push` giving old tasks the promoted model's boxes) writes through one
``write_scores``: per task, a prediction of the version already there gets the new score
(when it differs by more than ``SCORE_TOLERANCE``), a task without one gets the model's
boxes as a new prediction carrying the score, recorded in the catalog task by task so an
interrupted run resumes without doubles. The project's ``model_version`` and sampling are
set after all scores are in (``use_uncertainty_sampling``), so ``/next`` never mixes the
new version with half-written scores.

Set-aside images (status ``duplicate``, ``conflict``, ``excluded``, ``unreadable``: not
``active``) leave the queue: ``write_scores`` never scores them, and ``take_out_of_queue``
(called by every `wb push`) deletes the task of such an image when nobody has annotated
or skipped it (in Label Studio, nor recorded by a pull), and otherwise keeps the task for
its annotations and deletes its predictions. A score of None is no way out: the queue
orders by ``predictions__score`` and SQLite sorts NULL first, so such a task would come
FIRST; a task without a prediction of the project's ``model_version`` is not considered
by uncertainty sampling at all (while any task has one, which the active tasks do).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalog.records import PriorityRecord
from ..errors import WorkbenchError
from .project import Project
from .tasks import ModelPrediction, prediction_for

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
SCORE_TOLERANCE = 1e-6


@dataclass
class ScoreWrite:
    """What ``write_scores`` did."""

    updated: int = 0  # predictions of the version whose score changed
    created: int = 0  # tasks that had no prediction of the version: one added
    unchanged: int = 0  # predictions whose score was already right
    not_pushed: int = 0  # scored images without a task in the project
    set_aside: int = 0  # scored images no longer active (duplicate, conflict, ...): skipped
    task_of: dict[int, int] = field(default_factory=dict)  # image id -> task id (written ones)


def version_predictions(project: Project, version: str) -> dict[int, list[Any]]:
    """task id -> the project's predictions of ``version``."""
    ours: dict[int, list] = {}
    for p in project.client.list_predictions(project.id):
        if getattr(p, "model_version", None) == version:
            ours.setdefault(int(p.task), []).append(p)
    return ours


def write_scores(
    project: Project,
    catalog,
    version: str,
    scores_by_image: dict[int, float | None],
    *,
    existing: dict[int, list[Any]] | None = None,
    uncertainty: dict[int, float] | None = None,
    record_boxless: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScoreWrite:
    """Give each scored image's task a prediction of ``version`` with that score, in the
    order of ``scores_by_image``.

    ``existing``: the project's predictions of ``version`` by task, when the caller has
    listed them already ({} when the catalog knows there are none); None lists them.
    A new prediction carries the model's stored boxes for the image (none when it has
    no stored prediction) and ``uncertainty`` (image id -> value) when given; a score of
    None leaves the one ``prediction_for`` derives. ``record_boxless``: also record the
    version for tasks given a box-less prediction (False: `wb push` adds the model's
    boxes later). Images that are not active are skipped (counted in ``set_aside``): their
    tasks leave the queue (``take_out_of_queue``)."""
    tasks = catalog.ls_task_map(project.id)
    out = ScoreWrite(not_pushed=sum(1 for i in scores_by_image if i not in tasks))
    todo = [i for i in scores_by_image if i in tasks]
    active = {im.id for im in catalog.images(status="active", ids=todo)} if todo else set()
    out.set_aside = len(todo) - len(active)
    todo = [i for i in todo if i in active]
    ours = version_predictions(project, version) if existing is None else existing
    missing = [i for i in todo if tasks[i] not in ours]
    boxes = catalog.predictions(version, missing) if missing else {}
    images = {im.id: im for im in catalog.images(ids=missing)} if missing else {}
    uncertainty = uncertainty or {}
    for n, image_id in enumerate(todo, start=1):
        task_id, score = tasks[image_id], scores_by_image[image_id]
        out.task_of[image_id] = task_id
        if task_id in ours:
            for pred in ours[task_id]:
                if (
                    pred.score is not None
                    and score is not None
                    and abs(float(pred.score) - score) <= SCORE_TOLERANCE
                ):
                    out.unchanged += 1
                else:
                    project.client.update_prediction(int(pred.id), score=score)
                    out.updated += 1
        else:
            pred = ModelPrediction(version, boxes.get(image_id, []), uncertainty.get(image_id))
            body = prediction_for(
                images[image_id],
                pred,
                project.classes,
                project.level,
                project.taxonomy,
                project.mapping,
            )
            if score is not None:
                body["score"] = score
            project.client.create_prediction(task_id, body)
            if record_boxless or image_id in boxes:
                # recorded per task, as push does: an interrupted run resumes without doubles
                catalog.set_ls_prediction_version(project.id, [task_id], version)
            out.created += 1
        if on_progress is not None:
            on_progress(n, len(todo))
    return out


@dataclass
class QueueRemoval:
    """What ``take_out_of_queue`` did."""

    deleted: int = 0  # tasks nobody had annotated or skipped: deleted in Label Studio
    kept: int = 0  # tasks with annotations: kept, their predictions deleted
    predictions_deleted: int = 0

    @property
    def taken_out(self) -> int:
        return self.deleted + self.kept


def take_out_of_queue(project: Project, catalog, image_ids: list[int]) -> QueueRemoval:
    """Take the tasks of these (set-aside) images out of the annotators' queue; see the
    module's docstring. Recorded per task, so an interrupted run resumes: a deleted task
    is forgotten by the catalog (a later push gives the image a new task if it is active
    again), a kept one is recorded with no prediction version (so it is not looked at
    again, and gets the promoted model's boxes back if the image becomes active)."""
    out = QueueRemoval()
    tasks = catalog.ls_task_map(project.id)
    versions = catalog.ls_prediction_versions(project.id)
    stored = catalog.ls_annotations(project.id)
    for image_id in image_ids:
        task_id = tasks.get(image_id)
        if task_id is None:
            continue
        if task_id in stored:
            work = True
        else:
            task = project.client.get_task(task_id)
            work = bool(
                (getattr(task, "total_annotations", 0) or 0)
                + (getattr(task, "cancelled_annotations", 0) or 0)
                or getattr(task, "annotations", None)
            )
        if not work:
            project.client.delete_task(task_id)
            catalog.forget_ls_tasks(project.id, [task_id])
            out.deleted += 1
            continue
        if versions.get(task_id) is None:
            continue  # kept before: its predictions went then
        for pred in project.client.list_task_predictions(task_id):
            project.client.delete_prediction(int(pred.id))
            out.predictions_deleted += 1
        catalog.record_ls_tasks(project.id, [(image_id, task_id, None)])
        out.kept += 1
    if out.taken_out:
        log.info(
            "project %s: %d tasks of set-aside images left the queue (%d deleted, %d kept "
            "for their annotations)",
            project.id,
            out.taken_out,
            out.deleted,
            out.kept,
        )
    return out


def use_uncertainty_sampling(project: Project, version: str, current: Any = None) -> bool:
    """Point the project's queue at ``version``'s scores (uncertainty sampling on that
    model version); with ``current`` (the project as read) only when it differs.
    Returns whether it was changed."""
    if (
        current is not None
        and current.model_version == version
        and current.sampling == UNCERTAINTY_SAMPLING
    ):
        return False
    project.client.update_project(project.id, model_version=version, sampling=UNCERTAINTY_SAMPLING)
    return True


@dataclass
class OrderResult:
    project_id: int
    model_version: str
    updated: int = 0  # predictions whose score changed
    created: int = 0  # tasks that had no prediction of this version
    unchanged: int = 0
    not_pushed: int = 0  # prioritised images without a task (run `wb push`)
    first_image_id: int | None = None  # the task annotators get first
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"Label Studio project {self.project_id}: uncertainty sampling on model "
            f"{self.model_version}; {self.updated} prediction scores updated, "
            f"{self.created} predictions added, {self.unchanged} already right"
        )
        if self.not_pushed:
            text += f"; {self.not_pushed} prioritised images have no task yet (run `wb push`)"
        return text


def front_scores(image_ids: list[int], existing: list[float]) -> dict[int, float]:
    """image id -> score: below every ``existing`` score (and below 0), in the given order
    (`wb review send`, field photos; see ``front.py``)."""
    base = min([0.0, *existing])
    n = len(image_ids)
    return {image_id: base - (n - k) for k, image_id in enumerate(image_ids)}


@dataclass
class FieldFirst:
    """What ``field_photos_first`` did."""

    image_ids: list[int] = field(default_factory=list)  # in queue order
    created: int = 0
    updated: int = 0


def field_photos_first(project: Project, catalog, version: str) -> FieldFirst:
    """Put the field photos whose answer an officer marked wrong, or that the model was
    unsure of (``catalog.field_queue_images``: active, not yet annotated), at the front
    of the queue: ``front_scores`` below every other score of ``version``, as `wb
    review send` does. Photos without a task yet are left for the push that makes one."""
    tasks = catalog.ls_task_map(project.id)
    order = [i for i in catalog.field_queue_images() if i in tasks]
    if not order:
        return FieldFirst()
    ours = version_predictions(project, version)
    sent = {tasks[i] for i in order}
    existing = [
        float(p.score) for t, ps in ours.items() if t not in sent for p in ps if p.score is not None
    ]
    written = write_scores(project, catalog, version, front_scores(order, existing), existing=ours)
    use_uncertainty_sampling(project, version)
    log.info("project %s: %d field photos first in the queue", project.id, len(order))
    return FieldFirst(order, written.created, written.updated)


def annotation_scores(
    priorities: list[PriorityRecord], batch: list[int] | None = None
) -> dict[int, float]:
    """image id -> prediction score (lower = asked first).

    ``priorities`` are the catalog's records (``image_id``, ``uncertainty``); ``batch`` the
    selected ids in selection order when the strategy is not plain uncertainty order.
    """
    rest = {r.image_id: min(max(1.0 - float(r.uncertainty), 0.0), 1.0) for r in priorities}
    if not batch:
        return rest
    scores = {i: 0.5 + s / 2 for i, s in rest.items()}
    for position, image_id in enumerate(batch):
        scores[image_id] = 0.5 * position / len(batch)
    return scores


def apply_order(
    project: Project,
    catalog,
    version: str,
    batch: list[int] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> OrderResult:
    """Write ``version``'s stored priorities into the workspace's Label Studio project.

    ``batch``: the selected image ids in order, for strategies whose batch is not the top
    of the uncertainty ranking (``diverse``, ``random``); None for ``uncertainty``.
    """
    rows = catalog.priorities(version)
    if not rows:
        raise WorkbenchError(
            f"model {version} has no stored priorities: run `wb prioritize --model {version}` first"
        )
    scores = annotation_scores(rows, batch)
    uncertainty = {r.image_id: r.uncertainty for r in rows}
    written = write_scores(
        project, catalog, version, scores, uncertainty=uncertainty, on_progress=on_progress
    )
    result = OrderResult(
        project.id,
        version,
        updated=written.updated,
        created=written.created,
        unchanged=written.unchanged,
        not_pushed=written.not_pushed,
    )
    use_uncertainty_sampling(project, version)
    if written.task_of:
        result.first_image_id = min(written.task_of, key=lambda i: (scores[i], i))
    log.info(result.summary())
    return result
