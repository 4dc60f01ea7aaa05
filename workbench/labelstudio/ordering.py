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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from ..catalog.records import PriorityRecord
from ..errors import WorkbenchError
from .client import LabelStudioClient
from .tasks import ModelPrediction, prediction_for

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
SCORE_TOLERANCE = 1e-6


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


def annotation_scores(priorities: list[PriorityRecord], batch: list[int] | None = None
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
    ws,
    catalog,
    client: LabelStudioClient,
    version: str,
    batch: list[int] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> OrderResult:
    """Write ``version``'s stored priorities into the workspace's Label Studio project.

    ``batch``: the selected image ids in order, for strategies whose batch is not the top
    of the uncertainty ranking (``diverse``, ``random``); None for ``uncertainty``.
    """
    pid = ws.get("labelstudio", "project_id")
    if pid is None:
        raise WorkbenchError(
            "the workspace has no Label Studio project yet: run `wb push` "
            "first (its tasks then carry these priorities), or pass "
            "--no-labelstudio"
        )
    pid = int(pid)
    rows = catalog.priorities(version)
    if not rows:
        raise WorkbenchError(
            f"model {version} has no stored priorities: run `wb prioritize "
            f"--model {version}` first"
        )
    scores = annotation_scores(rows, batch)
    uncertainty = {r.image_id: r.uncertainty for r in rows}
    level = ws.get("labelstudio", "project_level") or ws.get("model", "level", "species")
    classes = ws.taxonomy.classes(level)
    tasks = catalog.ls_task_map(pid)
    result = OrderResult(pid, version, not_pushed=sum(1 for i in scores if i not in tasks))

    ours: dict[int, list] = {}
    for p in client.list_predictions(pid):
        if getattr(p, "model_version", None) == version:
            ours.setdefault(int(p.task), []).append(p)

    todo = [i for i in scores if i in tasks]
    missing = [i for i in todo if tasks[i] not in ours]
    boxes = catalog.predictions(version, missing) if missing else {}
    images = {im.id: im for im in catalog.images(ids=missing)} if missing else {}
    for n, image_id in enumerate(todo, start=1):
        task_id, score = tasks[image_id], scores[image_id]
        if task_id in ours:
            for pred in ours[task_id]:
                if pred.score is not None and abs(float(pred.score) - score) <= SCORE_TOLERANCE:
                    result.unchanged += 1
                else:
                    client.update_prediction(int(pred.id), score=score)
                    result.updated += 1
        else:
            pred = ModelPrediction(version, boxes.get(image_id, []), uncertainty[image_id])
            body = prediction_for(images[image_id], pred, classes, level, ws.taxonomy)
            body["score"] = score
            client.create_prediction(task_id, body)
            # recorded per task, as push does: an interrupted run resumes without doubles
            catalog.set_ls_prediction_version(pid, [task_id], version)
            result.created += 1
        if on_progress is not None:
            on_progress(n, len(todo))
    # last, so /next never mixes the new version with half-written scores
    client.update_project(pid, model_version=version, sampling=UNCERTAINTY_SAMPLING)
    if todo:
        result.first_image_id = min(todo, key=lambda i: (scores[i], i))
    log.info(result.summary())
    return result
