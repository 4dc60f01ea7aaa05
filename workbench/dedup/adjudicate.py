"""`wb dedup adjudicate`: experts settle conflict groups in a Label Studio adjudication project.

``push_conflicts`` sends every open conflict group (one task per group, see
``workbench.labelstudio.adjudication_project``); ``pull_answers`` reads the submitted
answers and settles each group through ``resolve_group``, the one settling path,
with ``resolved_by="labelstudio:<annotator>"``. Settled groups stay settled when
`wb dedup` runs again (the detection keeps resolutions by group key).

Which answer counts: the submitted (not skipped) annotations of a task that make a
choice. When they all agree, that is the answer; when annotators disagree, the group
stays open and is listed. A changed answer settles the group again, unless someone
settled it another way meanwhile (e.g. `wb dedup resolve`): a person's later word on
the command line is not overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from ..labelstudio.adjudication_project import (
    DISTINCT_CHOICE,
    AdjudicationAnswer,
    AdjudicationGroup,
    AdjudicationImage,
    AdjudicationPushResult,
    adjudication_answers,
    adjudication_project_id,
    push_adjudication,
)
from ..labelstudio.pull import latest_annotation
from ..taxonomy import BACKGROUND
from .resolve import resolve_group

log = logging.getLogger(__name__)

RESOLVED_BY_PREFIX = "labelstudio:"


def open_conflicts(catalog) -> list[AdjudicationGroup]:
    """The conflict groups nobody has settled, as plain data for the adjudication project."""
    out = []
    for g in catalog.dup_groups(kind="conflict", settled=False):
        images = [catalog.get_image(i) for i in g.image_ids]
        out.append(
            AdjudicationGroup(
                group_id=g.id,
                group_key=g.group_key,
                images=[
                    AdjudicationImage(im.id, im.path, im.label, im.width, im.height)
                    for im in images
                ],
            )
        )
    return out


def adjudication_labels(taxonomy, groups: list[AdjudicationGroup] = ()) -> list[str]:
    """The answers offered: every taxonomy label, ``background``, and any label an
    image of the groups is filed under that the taxonomy lacks."""
    labels = [*taxonomy.all_labels, BACKGROUND]
    for g in groups:
        for im in g.images:
            if im.label and im.label not in labels:
                labels.append(im.label)
    return labels


def push_conflicts(ws, catalog, client, conn, new_project: bool = False) -> AdjudicationPushResult:
    """Push the open conflict groups to the adjudication project (never twice)."""
    groups = open_conflicts(catalog)
    return push_adjudication(
        ws, catalog, client, conn, groups, adjudication_labels(ws.taxonomy, groups), new_project
    )


@dataclass
class Settled:
    group_id: int
    task_id: int
    resolution: str  # label | distinct
    label: str | None
    resolved_by: str
    statuses: dict[str, int]  # status -> images of the group now


@dataclass
class AdjudicationPullResult:
    project_id: int
    answered_tasks: int = 0  # tasks with at least one annotation (or skip)
    settled: list[Settled] = field(default_factory=list)
    unchanged: int = 0  # answers applied before
    waiting: list[int] = field(default_factory=list)  # open groups whose task has no answer yet
    disagreements: list[dict] = field(default_factory=list)
    settled_elsewhere: list[int] = field(default_factory=list)  # e.g. `wb dedup resolve`
    stale_tasks: list[int] = field(default_factory=list)  # their group no longer exists
    invalid: list[dict] = field(default_factory=list)  # an answer that is not a known label

    def to_dict(self) -> dict:
        return asdict(self)


def decide(
    answers: list[AdjudicationAnswer],
) -> tuple[AdjudicationAnswer | None, list[AdjudicationAnswer]]:
    """(the answer to apply, or None; the submitted answers that made a choice).

    The latest annotation stands for the answer when all choices agree."""
    made = [a for a in answers if not a.cancelled and a.choice]
    if not made or len({a.choice for a in made}) > 1:
        return None, made
    return latest_annotation(made), made


def pull_answers(ws, catalog, client) -> AdjudicationPullResult:
    """Apply the experts' submitted answers; returns what happened to each group."""
    project_id = adjudication_project_id(ws)
    result = AdjudicationPullResult(project_id)
    records = catalog.adjudication_tasks(project_id)
    answered_groups: set[int] = set()
    for task in adjudication_answers(client, project_id):
        result.answered_tasks += 1
        group = catalog.dup_group_by_key(task.group_key) if task.group_key else None
        if group is None:  # the images changed and `wb dedup` regrouped them
            result.stale_tasks.append(task.task_id)
            continue
        answered_groups.add(group.id)
        answer, made = decide(task.answers)
        if answer is None:
            if made:
                result.disagreements.append(
                    {
                        "group_id": group.id,
                        "task_id": task.task_id,
                        "answers": {
                            a.annotator or f"annotation {a.annotation_id}": a.choice for a in made
                        },
                    }
                )
            else:
                answered_groups.discard(group.id)  # only skipped: still waiting
            continue
        rec = records.get(group.id)
        if group.settled:
            if not (group.resolved_by or "").startswith(RESOLVED_BY_PREFIX):
                result.settled_elsewhere.append(group.id)
                continue
            if rec is not None and (rec.applied_annotation_id, rec.applied_updated_at) == (
                answer.annotation_id,
                answer.updated_at,
            ):
                result.unchanged += 1
                continue
        distinct = answer.choice == DISTINCT_CHOICE
        label = None if distinct else answer.choice
        members = [catalog.get_image(i) for i in group.image_ids]
        valid = adjudication_labels(
            ws.taxonomy,
            [
                AdjudicationGroup(
                    group.id,
                    group.group_key,
                    [AdjudicationImage(m.id, m.path, m.label, None, None) for m in members],
                )
            ],
        )
        if label is not None and label not in valid:
            result.invalid.append(
                {
                    "group_id": group.id,
                    "task_id": task.task_id,
                    "choice": label,
                    "reason": "not a label of the taxonomy or of the group's images",
                }
            )
            continue
        by = f"{RESOLVED_BY_PREFIX}{answer.annotator or 'unknown'}"
        settled = resolve_group(catalog, group.id, label=label, distinct=distinct, resolved_by=by)
        if rec is None:  # pushed by an interrupted run and not recorded: record it now
            catalog.record_adjudication_tasks(
                project_id, [(group.id, group.group_key, task.task_id)]
            )
        catalog.set_adjudication_applied(
            project_id, group.id, answer.annotation_id, answer.updated_at
        )
        statuses: dict[str, int] = {}
        for i in settled.image_ids:
            s = catalog.get_image(i).status
            statuses[s] = statuses.get(s, 0) + 1
        result.settled.append(
            Settled(
                group.id, task.task_id, settled.resolution, settled.resolved_label, by, statuses
            )
        )
    open_ids = {g.id for g in catalog.dup_groups(kind="conflict", settled=False)}
    result.waiting = sorted(g for g in records if g in open_ids and g not in answered_groups)
    log.info(
        "adjudication pull: %d groups settled, %d waiting", len(result.settled), len(result.waiting)
    )
    return result
