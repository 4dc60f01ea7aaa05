"""The Label Studio side of `wb dedup adjudicate`: an ADJUDICATION project (separate from the
labelling project) with one task per duplicate group, its images side by side and
one question: which label is right, or are these different images?

Re-running never creates a second task for a group: each task carries the group's
key (its members) in its data, and tasks the catalog has not recorded (an import
interrupted after Label Studio accepted it) are matched back by that key first.

The config has a fixed number of image slots (``MAX_IMAGES``): Label Studio refuses
tasks that lack a data field the config names, and refuses config changes that name
fields old tasks lack, so the slot count cannot follow the largest group. Unused
slots show a blank pixel (a different one each: see ``blank_image``); a larger group
shows its first ``MAX_IMAGES`` images and lists every image in the summary text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ..errors import WorkbenchError
from .client import Connection, LabelStudioClient, ProjectMissing
from .pull import ANNOTATED_TASKS_QUERY, annotation_from_sdk
from .push import ensure_storages
from .tasks import image_url

log = logging.getLogger(__name__)

MAX_IMAGES = 6
VERDICT = "verdict"  # the Choices control
DISTINCT_CHOICE = "These are different images"
GROUP_KEY_FIELD = "wb_group_key"  # task data: the reconciliation key
GROUP_ID_FIELD = "wb_group_id"


def blank_image(slot: int) -> str:
    """A transparent 1x1 PNG for an unused image slot, different for each slot: Label
    Studio's page loads each URL once, and slots sharing one URL showed "There was an
    issue loading URL" boxes (seen in headless Chromium, 1.23.2)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (1, 1), (255, 255, 255 - slot % 256, 0)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@dataclass
class AdjudicationImage:
    image_id: int
    path: str
    label: str | None
    width: int | None
    height: int | None


@dataclass
class AdjudicationGroup:
    """One group to adjudicate, as plain data (built by the dedup side)."""

    group_id: int
    group_key: str
    images: list[AdjudicationImage]


@dataclass
class AdjudicationPushResult:
    project_id: int
    project_url: str
    new_project: bool = False
    created: int = 0  # tasks imported now
    already: int = 0  # groups that had a task before
    reconciled: int = 0  # tasks found in Label Studio but not recorded
    task_ids: dict[int, int] = field(default_factory=dict)  # group id -> task id


@dataclass
class AdjudicationAnswer:
    """One submitted (or skipped) annotation of an adjudication task."""

    annotation_id: int
    annotator: str | None
    updated_at: str | None
    cancelled: bool
    choice: str | None  # a label, DISTINCT_CHOICE, or None (no choice made)


@dataclass
class AdjudicationTaskAnswers:
    task_id: int
    group_id: int | None
    group_key: str | None
    answers: list[AdjudicationAnswer]


def adjudication_config(labels: list[str], max_images: int = MAX_IMAGES) -> str:
    """The adjudication project's labelling config: ``max_images`` image slots side by
    side, each with a caption, and one single-choice question."""
    if not labels:
        raise WorkbenchError("no labels to offer in the adjudication question; check the taxonomy")
    slots = "\n".join(
        f'    <View style="flex: 1 1 30%; min-width: 200px; max-width: 480px;">\n'
        f'      <Text name="caption_{i}" value="$caption_{i}"/>\n'
        f'      <Image name="image_{i}" value="$image_{i}" maxWidth="100%" zoom="true" '
        f'zoomControl="false" rotateControl="false"/>\n'
        f"    </View>"
        for i in range(max_images)
    )
    choices = "\n".join(f"    <Choice value={quoteattr(lab)}/>" for lab in labels)
    return (
        "<View>\n"
        '  <Header value="$title" size="4"/>\n'
        '  <Text name="summary" value="$summary"/>\n'
        # the question above the photos: on screen without scrolling (seen in Chromium)
        '  <Header value="Which label is right for these images?" size="5"/>\n'
        f'  <Choices name="{VERDICT}" toName="image_0" choice="single-radio" required="true" '
        'showInline="true">\n'
        f"{choices}\n"
        f"    <Choice value={quoteattr(DISTINCT_CHOICE)}/>\n"
        "  </Choices>\n"
        '  <View style="display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start;">\n'
        f"{slots}\n"
        "  </View>\n"
        "</View>\n"
    )


def adjudication_task(
    group: AdjudicationGroup, document_root: Path, max_images: int = MAX_IMAGES
) -> dict:
    """A task's data for one group: image slots, captions and the group's identity."""
    shown = group.images[:max_images]
    filed = ", ".join(
        f"image {n}: {im.label or '(no label)'}" for n, im in enumerate(group.images, start=1)
    )
    more = len(group.images) - len(shown)
    summary = (
        f"Filed as {filed}. Pick the label that is right for all of them, or "
        f"'{DISTINCT_CHOICE}' when they are different photos."
    )
    if more:
        paths = "; ".join(im.path for im in group.images)
        summary += f" Only the first {len(shown)} of {len(group.images)} are shown; all: {paths}"
    data: dict[str, Any] = {
        GROUP_ID_FIELD: group.group_id,
        GROUP_KEY_FIELD: group.group_key,
        "wb_image_ids": [im.image_id for im in group.images],
        "title": f"Duplicate group {group.group_id}: {len(group.images)} images "
        f"filed under different labels",
        "summary": summary,
    }
    for i in range(max_images):
        if i < len(shown):
            im = shown[i]
            size = f", {im.width}x{im.height}" if im.width and im.height else ""
            data[f"image_{i}"] = image_url(im.path, document_root)
            data[f"caption_{i}"] = f"image {i + 1}: {im.label or '(no label)'}{size} - {im.path}"
        else:
            data[f"image_{i}"] = blank_image(i)
            data[f"caption_{i}"] = ""
    return {"data": data}


def ensure_adjudication_project(
    ws, catalog, client: LabelStudioClient, labels: list[str], new_project: bool = False
) -> tuple[int, bool]:
    """The workspace's adjudication project (``[labelstudio] adjudication_project_id``),
    created when missing or when ``new_project``; returns (project id, created now)."""
    config = adjudication_config(labels)
    pid = ws.adjudication_project_id()
    if pid is not None and not new_project:
        try:
            project = client.get_project(int(pid))
        except ProjectMissing:
            raise ProjectMissing(
                f"the adjudication project {pid} no longer exists in Label Studio at "
                f"{client.url}. "
                "Run `wb dedup adjudicate --new-project` to create a new one and push the open "
                "conflict groups again."
            ) from None
        if (project.label_config or "").strip() != config.strip():
            # new labels became choices; adding choices is always accepted
            client.update_project(int(pid), label_config=config)
        return int(pid), False
    if pid is not None:
        catalog.forget_adjudication_tasks(int(pid))
    project = client.create_project(
        f"{ws.name}: duplicate adjudication",
        config,
        description=f"workbench {ws.name}: settle images filed under different labels "
        "(`wb dedup adjudicate`)",
    )
    ws.set_adjudication_project(int(project.id))
    return int(project.id), True


def adjudication_project_id(ws) -> int:
    """The workspace's adjudication project id; an error when none was pushed yet."""
    pid = ws.adjudication_project_id()
    if pid is None:
        raise WorkbenchError(
            "this workspace has no adjudication project yet; run `wb dedup adjudicate` first "
            "to push the conflict groups"
        )
    return int(pid)


def _reconcile(
    catalog, client: LabelStudioClient, project_id: int, groups: list[AdjudicationGroup]
) -> int:
    """Record tasks Label Studio holds for these groups but the catalog does not
    (cheap unless the counts differ); returns how many were recorded."""
    recorded = catalog.adjudication_tasks(project_id)
    if client.task_count(project_id) == len(recorded):
        return 0
    wanted = {g.group_key: g for g in groups if g.group_id not in recorded}
    found: dict[int, tuple[int, str, int]] = {}
    for task in client.iter_tasks(project_id, include="id,data", page_size=1000):
        key = (task.data or {}).get(GROUP_KEY_FIELD)
        group = wanted.get(key)
        if group is not None and group.group_id not in found:  # keep the first
            found[group.group_id] = (group.group_id, group.group_key, task.id)
    if found:
        catalog.record_adjudication_tasks(project_id, found.values())
    return len(found)


def push_adjudication(
    ws,
    catalog,
    client: LabelStudioClient,
    conn: Connection,
    groups: list[AdjudicationGroup],
    labels: list[str],
    new_project: bool = False,
) -> AdjudicationPushResult:
    """One task per group that has none yet, in one import; task ids recorded at once."""
    document_root = conn.served_root()
    # build every task first: an image outside the served folder fails before any import
    tasks = {g.group_id: adjudication_task(g, document_root) for g in groups}
    project_id, created = ensure_adjudication_project(ws, catalog, client, labels, new_project)
    result = AdjudicationPushResult(
        project_id, f"{conn.url}/projects/{project_id}", new_project=created
    )
    if not groups:
        return result
    ensure_storages(client, project_id, [im.path for g in groups for im in g.images], document_root)
    result.reconciled = _reconcile(catalog, client, project_id, groups)
    recorded = catalog.adjudication_tasks(project_id)
    todo = []
    for g in groups:
        rec = recorded.get(g.group_id)
        if rec is not None and rec.group_key == g.group_key:
            result.already += 1
            result.task_ids[g.group_id] = rec.task_id
        else:
            todo.append(g)
    if todo:
        ids = client.import_tasks(project_id, [tasks[g.group_id] for g in todo])
        catalog.record_adjudication_tasks(
            project_id, [(g.group_id, g.group_key, t) for g, t in zip(todo, ids)]
        )
        result.task_ids.update({g.group_id: t for g, t in zip(todo, ids)})
        result.created = len(todo)
    log.info("adjudication: %d tasks created, %d already there", result.created, result.already)
    return result


def adjudication_answers(
    client: LabelStudioClient, project_id: int
) -> list[AdjudicationTaskAnswers]:
    """Every adjudication task with annotations (submitted or skipped), parsed."""
    try:
        users = client.users()
    except WorkbenchError:  # a token without the right to list users
        users = {}
    out = []
    try:
        tasks = list(
            client.iter_tasks(project_id, fields="all", page_size=200, query=ANNOTATED_TASKS_QUERY)
        )
    except ProjectMissing:
        raise ProjectMissing(
            f"the adjudication project {project_id} no longer exists in Label Studio at "
            f"{client.url}. "
            "Run `wb dedup adjudicate --new-project` to push the open conflict groups again."
        ) from None
    for task in tasks:
        data = task.data or {}
        gid = data.get(GROUP_ID_FIELD)
        answers = []
        for a in task.annotations or []:
            ann = annotation_from_sdk(a, task.id, None, users)
            answers.append(
                AdjudicationAnswer(
                    annotation_id=ann.annotation_id,
                    annotator=ann.annotator,
                    updated_at=ann.updated_at,
                    cancelled=ann.was_cancelled,
                    choice=_verdict(ann.result),
                )
            )
        out.append(
            AdjudicationTaskAnswers(
                task_id=task.id,
                group_id=int(gid) if gid is not None else None,
                group_key=data.get(GROUP_KEY_FIELD),
                answers=answers,
            )
        )
    return out


def _verdict(result: list[dict]) -> str | None:
    for r in result:
        if r.get("from_name") == VERDICT and r.get("type") == "choices":
            choices = (r.get("value") or {}).get("choices") or []
            if choices:
                return str(choices[0])
    return None


__all__ = [
    "DISTINCT_CHOICE",
    "MAX_IMAGES",
    "AdjudicationAnswer",
    "AdjudicationGroup",
    "AdjudicationImage",
    "AdjudicationPushResult",
    "AdjudicationTaskAnswers",
    "adjudication_answers",
    "adjudication_config",
    "adjudication_project_id",
    "adjudication_task",
    "blank_image",
    "ensure_adjudication_project",
    "push_adjudication",
]
