"""`wb push`: catalog images -> Label Studio tasks, with the model's boxes pre-drawn.

Re-running never creates a second task for an image: every task carries the
catalog image id in its data, and when Label Studio holds tasks the catalog has
not recorded (an import that succeeded just before an interruption), they are
matched back by that id before anything is imported.

Tasks that repeat an image (two pushes at once before the workspace lock, an import by
hand) are found by the same listing and removed when that loses no annotation
(``duplicates``); ``dry_run`` says what push would do and changes nothing.

Tasks of images set aside since they were pushed (duplicate, conflict, excluded,
unreadable) leave the annotators' queue on every push (``ordering.take_out_of_queue``);
field photos an officer marked wrong, or that the model was unsure of, go to its front
(``ordering.field_photos_first``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WorkbenchError
from ..faults import fault_point
from ..taxonomy import LEVELS
from .client import Connection, LabelStudioClient, LabelStudioRequestError
from .config import detection_config, parse_label_config
from .duplicates import Duplicates, TaskRow, find_duplicates, remove_duplicates
from .ordering import field_photos_first, take_out_of_queue, write_scores
from .project import Project, single_control
from .server import choose_document_root, storage_dirs
from .tasks import IMAGE_ID_FIELD, ImageOutsideRoot, ModelPrediction, build_task

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
# what the reconciling listing reads of each task: ids, the image id, annotation counts
LISTED_FIELDS = "id,data,total_annotations,cancelled_annotations"


@dataclass
class PushResult:
    project_id: int
    project_url: str
    level: str
    model_version: str | None
    created: int = 0  # tasks imported now
    already: int = 0  # images that had a task before this run
    reconciled: int = 0  # tasks found in Label Studio but not in the catalog
    forgotten: int = 0  # recorded tasks that Label Studio no longer has
    with_predictions: int = 0  # of the created tasks
    with_annotations: int = 0  # of the created tasks: ground truth already in the catalog
    refreshed: int = 0  # old tasks given the promoted model's prediction
    taken_out: int = 0  # tasks of set-aside images taken out of the queue now
    taken_out_deleted: int = 0  # of those: nobody had annotated them, deleted
    taken_out_kept: int = 0  # of those: kept for their annotations, predictions deleted
    field_first: int = 0  # field photos marked wrong or answered unsure: first in the queue
    seconds: float = 0.0
    new_project: bool = False
    dry_run: bool = False  # nothing was changed: the counts say what push would do
    duplicates: Duplicates = field(default_factory=Duplicates)
    warnings: list[str] = field(default_factory=list)

    @property
    def tasks_per_second(self) -> float:
        return self.created / self.seconds if self.seconds else 0.0


def ensure_project(
    ws,
    catalog,
    client: LabelStudioClient,
    level: str,
    new_project: bool = False,
    title: str | None = None,
    model_version: str | None = None,
    existing: int | None = None,
) -> tuple[int, bool]:
    """The workspace's project (id in ``[labelstudio] project_id``), created when
    missing or when ``new_project``; returns (project id, created now). ``existing``:
    use that project, someone else's (`wb push --project`): recorded as external, its
    label config read (it must have one RectangleLabels control) and never rewritten."""
    classes = ws.taxonomy.classes(level)
    config = detection_config(classes)
    pid = ws.project_id()
    if existing is not None:
        theirs = client.get_project(existing)  # ProjectMissing when there is none
        single_control(parse_label_config(theirs.label_config or ""), existing)
        if pid is not None and pid != existing:
            catalog.forget_ls_project(pid)
        ws.set_project(existing, level, external=True)
        return existing, False
    if pid is not None and not new_project:
        project = client.get_project(pid)  # ProjectMissing when deleted there
        stored_level = ws.get("labelstudio", "project_level", level)
        if stored_level != level:
            raise WorkbenchError(
                f"Label Studio project {pid} labels at level '{stored_level}', not '{level}'. "
                f"Push with --level {stored_level}, or start a project at this level with "
                "--new-project."
            )
        if ws.project_external():
            return pid, False  # someone else's: its config is theirs
        if (project.label_config or "").strip() != config.strip():
            # the taxonomy grew (--add-classes); Label Studio refuses to drop labels in use
            client.update_project(pid, label_config=config)
        return pid, False
    if pid is not None:
        catalog.forget_ls_project(pid)
    fields = {
        "description": f"workbench {ws.name}: boxes at level '{level}'",
        "show_collab_predictions": True,
    }
    if model_version:
        fields["model_version"] = model_version
    project = client.create_project(title or f"{ws.name} ({level})", config, **fields)
    ws.set_project(int(project.id), level)
    return int(project.id), True


def ensure_storages(
    client: LabelStudioClient, project_id: int, image_paths: list[str], document_root: Path
) -> None:
    """Connect a local-files storage for each image folder below the document root
    (Label Studio serves a file only to projects with a storage above it)."""
    have = {str(Path(p)) for p in client.local_storage_paths(project_id)}
    for d in storage_dirs(image_paths, document_root):
        if str(d) not in have:
            client.add_local_storage(project_id, d)


@dataclass
class Reconciled:
    recorded: int = 0  # tasks found in Label Studio but not in the catalog
    forgotten: int = 0  # recorded tasks that Label Studio no longer has
    duplicates: Duplicates = field(default_factory=Duplicates)


def reconcile(
    catalog,
    project: Project,
    valid_ids: set[int],
    *,
    dry_run: bool = False,
    on_duplicates: Callable[[Duplicates], None] | None = None,
) -> Reconciled:
    """Make ls_tasks agree with the project's tasks, and remove the tasks that repeat
    an image when that loses no annotation (``duplicates``); ``on_duplicates`` hears
    of them before anything is removed. ``dry_run``: decide, change nothing.

    Cheap when nothing was interrupted: a full listing (ids, image ids and annotation
    counts, one paged request per 1,000 tasks) happens only when Label Studio's task
    count differs from the catalog's, as it does whenever an image has two tasks.
    """
    client, project_id = project.client, project.id
    recorded = catalog.ls_task_map(project_id)
    out = Reconciled()
    if client.task_count(project_id) == len(recorded):
        return out
    by_image: dict[int, list[TaskRow]] = {}
    listed: set[int] = set()
    for task in client.iter_tasks(project_id, include=LISTED_FIELDS, page_size=1000):
        listed.add(int(task.id))
        data = task.data or {}
        image_id = data.get(IMAGE_ID_FIELD)
        if image_id is None or int(image_id) not in valid_ids:
            continue
        counts = [getattr(task, k, None) for k in ("total_annotations", "cancelled_annotations")]
        # a server that leaves the counts out: None, and the repeat is read whole
        work = None if all(c is None for c in counts) else sum(c or 0 for c in counts)
        row = TaskRow(int(task.id), work, data.get("model_version") or None)
        by_image.setdefault(int(image_id), []).append(row)
    out.duplicates = find_duplicates(project, catalog, by_image)
    kept = out.duplicates.kept
    missing = [
        (i, r.task_id, r.model_version) for i, r in kept.items() if recorded.get(i) != r.task_id
    ]
    gone = [t for i, t in recorded.items() if i not in kept or kept[i].task_id != t]
    # a recorded task that repeated its image and is removed now is neither
    out.recorded = sum(1 for i, _, _ in missing if recorded.get(i) not in listed)
    out.forgotten = sum(1 for t in gone if t not in listed)
    if dry_run:
        return out
    if out.duplicates.found and on_duplicates:
        on_duplicates(out.duplicates)
    remove_duplicates(project, catalog, out.duplicates)
    if gone:
        catalog.forget_ls_tasks(project_id, gone)
    if missing:
        catalog.record_ls_tasks(project_id, missing)
    return out


def push(
    ws,
    catalog,
    client: LabelStudioClient,
    conn: Connection,
    *,
    level: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    new_project: bool = False,
    refresh_predictions: bool = True,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    only: Collection[int] | None = None,
    truth_as_annotations: bool = True,
    existing_project: int | None = None,
    dry_run: bool = False,
    on_duplicates: Callable[[Duplicates], None] | None = None,
) -> PushResult:
    """Import every active image that has no task yet, in batches; record task ids
    per batch in one transaction each. ``only``: consider just these image ids
    (`wb review send`). ``truth_as_annotations``: an image that already has ground truth
    (boxes from an import, or a negative) carries it as the task's annotation, so it is
    shown drawn and is not in the annotators' queue; False leaves it out (`wb review
    send`: the image goes back into the queue to be annotated again). ``existing_project``:
    push into that project, someone else's (`wb push --project`; ``ensure_project``), with
    the boxes under its labels (``Project.mapping``). ``dry_run``: say what would be
    created and which repeated tasks removed; change nothing. ``on_duplicates``: told of
    the repeated tasks before any is removed."""
    if existing_project is not None and new_project:
        raise WorkbenchError("--project and --new-project exclude each other; choose one")
    level = level or ws.model_level()
    if level not in LEVELS:
        raise WorkbenchError(f"unknown level '{level}'; choose one of: {', '.join(LEVELS)}")
    taxonomy = ws.taxonomy
    classes = taxonomy.classes(level)
    images = catalog.images(status="active")
    if only is not None:
        wanted = set(only)
        images = [im for im in images if im.id in wanted]
    if not images:
        raise WorkbenchError("the catalog has no active images to push; run `wb ingest` first")
    document_root = conn.served_root()
    unsized = [im for im in images if not im.width or not im.height]
    if unsized:
        raise WorkbenchError(
            f"{len(unsized)} active image(s) have no size in the catalog (e.g. "
            f"{unsized[0].path}); re-run `wb ingest` on them before pushing"
        )
    outside = [im.path for im in images if not _under(im.path, document_root)]
    if outside:
        raise ImageOutsideRoot(
            f"{len(outside)} image(s) lie outside the folder Label Studio serves "
            f"({document_root}), "
            f"e.g. {outside[0]}. Restart the local server so it serves their common folder "
            f"({_suggested_root(images)}): `wb ls stop && wb ls start`."
        )

    model = catalog.promoted_model()
    version = model.version if model else None
    if dry_run:
        return _plan(ws, catalog, client, conn, images, level, version, limit, existing_project)
    uncertainty = catalog.uncertainty_by_image(version) if version else {}
    t0 = time.monotonic()
    project_id, created_project = ensure_project(
        ws, catalog, client, level, new_project, model_version=version, existing=existing_project
    )
    result = PushResult(
        project_id=project_id,
        project_url=f"{conn.url}/projects/{project_id}",
        level=level,
        model_version=version,
        new_project=created_project,
    )
    ensure_storages(client, project_id, [im.path for im in images], document_root)
    everything = catalog.images()
    project = Project(
        client, conn, project_id, level, taxonomy, ws.label_map(), ws.project_external()
    )
    mapping = project.mapping
    found = reconcile(catalog, project, {im.id for im in everything}, on_duplicates=on_duplicates)
    result.reconciled, result.forgotten = found.recorded, found.forgotten
    result.duplicates = found.duplicates
    recorded = catalog.ls_task_map(project_id)
    aside = [im.id for im in everything if im.status != "active" and im.id in recorded]
    if aside:
        removal = take_out_of_queue(project, catalog, aside)
        result.taken_out = removal.taken_out
        result.taken_out_deleted, result.taken_out_kept = removal.deleted, removal.kept
    pushed = catalog.ls_task_map(project_id)
    result.already = sum(1 for im in images if im.id in pushed)
    todo = [im for im in images if im.id not in pushed]
    if limit is not None:
        todo = todo[:limit]
    if on_progress:
        on_progress(0, len(todo))
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        preds = _predictions(catalog, version, [im.id for im in batch], uncertainty)
        annotated = [im.id for im in batch if im.annotated] if truth_as_annotations else []
        truth = catalog.boxes_by_image(annotated)
        tasks = [
            build_task(
                im,
                document_root,
                classes,
                level,
                taxonomy,
                preds.get(im.id),
                truth.get(im.id),
                mapping,
            )
            for im in batch
        ]
        task_ids = client.import_tasks(project_id, tasks)
        fault_point("push.imported")  # in Label Studio, not yet recorded: reconcile's case
        catalog.record_ls_tasks(
            project_id,
            [(im.id, tid, version if im.id in preds else None) for im, tid in zip(batch, task_ids)],
        )
        fault_point("push.recorded")
        result.created += len(batch)
        result.with_predictions += sum(1 for im in batch if im.id in preds)
        result.with_annotations += sum(1 for im in batch if im.id in truth)
        if on_progress:
            on_progress(result.created, len(todo))
    if version and refresh_predictions:
        result.refreshed = _refresh_predictions(project, catalog, version, images, uncertainty)
    if version and (result.with_predictions or result.refreshed or result.already):
        # uncertainty sampling falls back to random unless these agree (see the notes);
        # Label Studio 1.23 refuses a version that no prediction carries yet, so this
        # comes after the predictions are in
        try:
            client.update_project(project_id, model_version=version)
        except LabelStudioRequestError as exc:
            result.warnings.append(f"project model version not set to {version}: {exc}")
    if version and only is None:
        result.field_first = len(field_photos_first(project, catalog, version).image_ids)
    result.seconds = time.monotonic() - t0
    log.info(
        "pushed %d tasks in %.1f s (%.0f/s)",
        result.created,
        result.seconds,
        result.tasks_per_second,
    )
    return result


def _plan(
    ws, catalog, client, conn, images, level: str, version, limit, existing: int | None = None
) -> PushResult:
    """`wb push --dry-run`: the tasks push would create, and the repeated tasks it would
    remove; nothing is written anywhere. ``existing``: `--project`'s project."""
    pid = existing if existing is not None else ws.project_id()
    result = PushResult(
        project_id=pid or 0,
        project_url=f"{conn.url}/projects/{pid}" if pid else conn.url,
        level=level,
        model_version=version,
        new_project=pid is None,
        dry_run=True,
    )
    pushed: set[int] = set()
    if pid is not None:
        client.get_project(pid)  # ProjectMissing when deleted there
        external = existing is not None or ws.project_external()
        project = Project(client, conn, pid, level, ws.taxonomy, ws.label_map(), external)
        found = reconcile(catalog, project, {im.id for im in catalog.images()}, dry_run=True)
        result.reconciled, result.forgotten = found.recorded, found.forgotten
        result.duplicates = found.duplicates
        pushed = set(catalog.ls_task_map(pid)) | set(found.duplicates.kept)
    result.already = sum(1 for im in images if im.id in pushed)
    todo = [im for im in images if im.id not in pushed]
    result.created = len(todo if limit is None else todo[:limit])
    return result


def _predictions(
    catalog, version: str | None, image_ids: list[int], uncertainty: dict[int, float]
) -> dict[int, ModelPrediction]:
    if not version:
        return {}
    boxes = catalog.predictions(version, image_ids)
    return {i: ModelPrediction(version, b, uncertainty.get(i)) for i, b in boxes.items()}


def _refresh_predictions(
    project: Project, catalog, version: str, images, uncertainty: dict[int, float]
) -> int:
    """Give already-pushed tasks the promoted model's boxes when they carry an older
    version (or none); the annotators' own work is untouched. The catalog records which
    version each task carries, so Label Studio's predictions are not listed; scores as
    `wb push` writes them (``task_score``)."""
    versions = catalog.ls_prediction_versions(project.id)
    pushed = catalog.ls_task_map(project.id)
    stale = [im.id for im in images if im.id in pushed and versions.get(pushed[im.id]) != version]
    if not stale:
        return 0
    with_boxes = catalog.predictions(version, stale)  # images the model predicted
    written = write_scores(
        project, catalog, version, dict.fromkeys(with_boxes), existing={}, uncertainty=uncertainty
    )
    return written.created


def _under(path: str, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _suggested_root(images) -> str:
    try:
        return str(choose_document_root(im.path for im in images))
    except WorkbenchError as exc:
        return f"none: {exc}"
