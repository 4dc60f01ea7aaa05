"""`wb agreement`: how far annotators agree when Label Studio holds several annotations
of one task (overlap), read from what `wb pull` recorded.

Rules, stated once here (tests/unit/test_labelstudio_agreement.py lists them case by case):

- Each annotator counts once per task: their latest submitted (not skipped) annotation.
- Two annotations agree on a box when boxes of the same label overlap at IoU >=
  ``iou_threshold`` (``geometry.match_boxes``, one-to-one). Their agreement is
  ``2 * matched / (boxes of one + boxes of the other)`` (the F1 of one against the other,
  symmetric); two annotations that both say "no objects" agree fully (1.0).
- A task's agreement is the mean over its pairs of annotators. A task annotated by one
  person only has no agreement: ``None``, shown "n/a", never 0 or 1.
- A task is a disagreement when its agreement is below ``threshold``; disagreements are
  what `wb agreement send` routes to expert review (``expert_review``).
- Per annotator: the agreement with the consensus of the task's other annotators (the mean
  of their pairwise agreements with each of them), over the tasks they shared; the share
  of pre-drawn boxes (the model's prediction sent with the task, as Label Studio showed it)
  they kept (same label, IoU >= ``iou_threshold``); and seconds per task from Label
  Studio's ``lead_time``. Each is ``None`` ("n/a") when nothing measured it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..catalog.records import Box, LsAnnotation
from ..errors import WorkbenchError
from ..geometry import match_boxes
from .pull import latest_annotation
from .tasks import DISPLAY_MIN_SCORE, project_mapping, result_boxes

DEFAULT_THRESHOLD = 0.8  # agreement below this: a disagreement, sent to expert review
DEFAULT_IOU = 0.5  # boxes of the same label at least this close are the same box
PROGRESS_EVERY = 500  # tasks between progress reports (10,000 tasks: ~8 s on a busy machine)


@dataclass
class PairAgreement:
    """Two annotators on one task."""

    annotators: tuple[str, str]
    score: float
    matched: int  # box pairs of the same label at IoU >= threshold
    class_swaps: int  # boxes paired by place only: the same object, another label
    boxes: tuple[int, int]  # boxes of each


@dataclass
class TaskAgreement:
    task_id: int
    image_id: int | None
    annotators: list[str]  # one per annotator (their latest submitted annotation)
    boxes: dict[str, int]  # annotator -> boxes drawn
    score: float | None  # None: annotated by one person only ("n/a")
    pairs: list[PairAgreement] = field(default_factory=list)
    disagreement: bool = False  # score below the threshold


@dataclass
class AnnotatorSummary:
    annotator: str
    tasks: int  # tasks with a submitted annotation of theirs
    shared_tasks: int  # of those: annotated by someone else too
    agreement: float | None  # with the consensus of the others (None: no shared task)
    predrawn_boxes: int  # pre-drawn boxes on their tasks (known predictions only)
    predrawn_kept: int
    acceptance: float | None  # kept / pre-drawn (None: no pre-drawn box known)
    timed_tasks: int  # annotations with a lead_time
    seconds_per_task: float | None  # median lead_time (None: none recorded)


@dataclass
class AgreementReport:
    project_id: int
    threshold: float
    iou_threshold: float
    tasks: list[TaskAgreement]
    annotators: list[AnnotatorSummary]

    @property
    def overlap_tasks(self) -> list[TaskAgreement]:
        return [t for t in self.tasks if t.score is not None]

    @property
    def disagreements(self) -> list[TaskAgreement]:
        return [t for t in self.tasks if t.disagreement]

    @property
    def mean_agreement(self) -> float | None:
        scores = [t.score for t in self.overlap_tasks]
        return statistics.fmean(scores) if scores else None

    def to_dict(self) -> dict:
        return {
            "project_id": self.project_id,
            "threshold": self.threshold,
            "iou_threshold": self.iou_threshold,
            "annotated_tasks": len(self.tasks),
            "overlap_tasks": len(self.overlap_tasks),
            "mean_agreement": self.mean_agreement,
            "disagreements": [t.task_id for t in self.disagreements],
            "tasks": [asdict(t) for t in self.tasks],
            "annotators": [asdict(a) for a in self.annotators],
        }


def pair_agreement(
    a: list[Box], b: list[Box], iou_threshold: float = DEFAULT_IOU
) -> tuple[float, int, int]:
    """(agreement, matched, class swaps) of two annotations' boxes (see the module rules)."""
    if not a and not b:
        return 1.0, 0, 0
    xa, xb = [x.xyxy for x in a], [y.xyxy for y in b]
    pairs = match_boxes(xa, xb, iou_threshold, labels=([x.label for x in a], [y.label for y in b]))
    used_a, used_b = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    rest_a = [i for i in range(len(a)) if i not in used_a]
    rest_b = [j for j in range(len(b)) if j not in used_b]
    swaps = match_boxes([xa[i] for i in rest_a], [xb[j] for j in rest_b], iou_threshold)
    return 2 * len(pairs) / (len(a) + len(b)), len(pairs), len(swaps)


def _name(a: LsAnnotation) -> str:
    return a.annotator or f"annotation {a.annotation_id}"


def latest_by_annotator(annotations: list[LsAnnotation]) -> dict[str, LsAnnotation]:
    """annotator -> their latest submitted annotation of a task (skips left out)."""
    out: dict[str, LsAnnotation] = {}
    for a in annotations:
        if not a.was_cancelled:
            name = _name(a)
            out[name] = latest_annotation([a, out[name]]) if name in out else a
    return out


def task_agreement(
    task_id: int,
    image_id: int | None,
    annotations: list[LsAnnotation],
    size: tuple[int | None, int | None] = (None, None),
    iou_threshold: float = DEFAULT_IOU,
    threshold: float = DEFAULT_THRESHOLD,
) -> TaskAgreement:
    """One task's agreement from all its annotations (skips and repeats are left out)."""
    latest = latest_by_annotator(annotations)
    names = sorted(latest)
    boxes = {n: result_boxes(latest[n].result, *size) for n in names}
    pairs = []
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            score, matched, swaps = pair_agreement(boxes[x], boxes[y], iou_threshold)
            pairs.append(
                PairAgreement((x, y), score, matched, swaps, (len(boxes[x]), len(boxes[y])))
            )
    score = statistics.fmean(p.score for p in pairs) if pairs else None
    return TaskAgreement(
        task_id=task_id,
        image_id=image_id,
        annotators=names,
        boxes={n: len(b) for n, b in boxes.items()},
        score=score,
        pairs=pairs,
        disagreement=score is not None and score < threshold,
    )


def predrawn_kept(predrawn: list[Box], drawn: list[Box], iou_threshold: float = DEFAULT_IOU) -> int:
    """How many pre-drawn boxes the annotation kept (same label, IoU >= threshold)."""
    return len(
        match_boxes(
            [p.xyxy for p in predrawn],
            [d.xyxy for d in drawn],
            iou_threshold,
            labels=([p.label for p in predrawn], [d.label for d in drawn]),
        )
    )


def shown_predictions(detections: list[dict], label_for: Callable[[str], str | None]) -> list[Box]:
    """The model's detections as Label Studio showed them pre-drawn: those `wb push` sends
    (score >= ``tasks.DISPLAY_MIN_SCORE``), under the project's labels (``label_for``)."""
    out = []
    for d in detections:
        if d.get("score") is not None and float(d["score"]) < DISPLAY_MIN_SCORE:
            continue
        label = label_for(d.get("label"))
        if label is not None:
            out.append(Box(label=label, x1=d["x1"], y1=d["y1"], x2=d["x2"], y2=d["y2"]))
    return out


def agreement_report(
    catalog,
    project_id: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    iou_threshold: float = DEFAULT_IOU,
    label_for: Callable[[str], str | None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> AgreementReport:
    """Agreement of every task with a submitted annotation, from the last pull's record.

    ``label_for``: catalog class -> the project's label (``ControlMapping.label_for``),
    to compare the pre-drawn boxes with what annotators drew; None: acceptance is n/a."""
    stored = catalog.ls_annotations(project_id)
    image_ids = {a.image_id for anns in stored.values() for a in anns if a.image_id is not None}
    images = {im.id: im for im in catalog.images(ids=image_ids)} if image_ids else {}
    versions = catalog.ls_prediction_versions(project_id)
    by_version: dict[str, set[int]] = {}
    for task_id, anns in stored.items():
        v = versions.get(task_id)
        if v and anns and anns[0].image_id is not None:
            by_version.setdefault(v, set()).add(anns[0].image_id)
    predictions = {
        v: catalog.predictions(v, ids) for v, ids in by_version.items() if label_for is not None
    }
    tasks: list[TaskAgreement] = []
    per: dict[str, dict] = {}
    if on_progress:
        on_progress(0, len(stored))
    for done, task_id in enumerate(sorted(stored), start=1):
        if on_progress and done % PROGRESS_EVERY == 0:
            on_progress(done, len(stored))
        anns = stored[task_id]
        image_id = anns[0].image_id if anns else None
        image = images.get(image_id)
        size = (image.width, image.height) if image is not None else (None, None)
        t = task_agreement(task_id, image_id, anns, size, iou_threshold, threshold)
        if not t.annotators:
            continue  # only skips
        tasks.append(t)
        version = versions.get(task_id)
        dets = predictions.get(version, {}).get(image_id) if version else None
        predrawn = shown_predictions(dets, label_for) if dets is not None else None
        latest = latest_by_annotator(anns)
        for name in t.annotators:
            s = per.setdefault(
                name,
                {"tasks": 0, "scores": [], "pre": 0, "kept": 0, "known": False, "times": []},
            )
            s["tasks"] += 1
            mine = [p.score for p in t.pairs if name in p.annotators]
            if mine:
                s["scores"].append(statistics.fmean(mine))
            a = latest[name]
            if a.lead_time is not None:
                s["times"].append(a.lead_time)
            if predrawn is not None:
                s["known"] = True
                s["pre"] += len(predrawn)
                s["kept"] += predrawn_kept(predrawn, result_boxes(a.result, *size), iou_threshold)
    if on_progress:
        on_progress(len(stored), len(stored))
    summaries = [
        AnnotatorSummary(
            annotator=name,
            tasks=s["tasks"],
            shared_tasks=len(s["scores"]),
            agreement=statistics.fmean(s["scores"]) if s["scores"] else None,
            predrawn_boxes=s["pre"],
            predrawn_kept=s["kept"],
            acceptance=s["kept"] / s["pre"] if s["pre"] else None,
            timed_tasks=len(s["times"]),
            seconds_per_task=statistics.median(s["times"]) if s["times"] else None,
        )
        for name, s in sorted(per.items())
    ]
    return AgreementReport(project_id, threshold, iou_threshold, tasks, summaries)


def workspace_agreement(
    ws,
    catalog,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    iou_threshold: float = DEFAULT_IOU,
    on_progress: Callable[[int, int], None] | None = None,
) -> AgreementReport:
    """``agreement_report`` of the workspace's labelling project, from the catalog alone
    (no Label Studio call). Pre-drawn boxes are compared under the labels of the config
    `wb push` writes; for someone else's project (`wb push --project`) acceptance is n/a."""
    pid = ws.project_id()
    if pid is None:
        raise WorkbenchError(
            "the workspace has no Label Studio project yet: run `wb push --overlap 2` (two "
            "annotators per task), let annotators work, then `wb pull` and `wb agreement`"
        )
    label_for = None
    if not ws.project_external():
        level = ws.project_level()
        label_for = project_mapping(ws.taxonomy.classes(level), level, ws.taxonomy).label_for
    return agreement_report(
        catalog,
        pid,
        threshold=threshold,
        iou_threshold=iou_threshold,
        label_for=label_for,
        on_progress=on_progress,
    )


def request_overlap(client, project_id: int, annotators: int) -> None:
    """Ask Label Studio for ``annotators`` submitted annotations of every task of the
    project (``maximum_annotations``, on all tasks: ``overlap_cohort_percentage`` 100),
    so that `wb agreement` has something to compare; 1 turns overlap off."""
    client.update_project(project_id, maximum_annotations=annotators, overlap_cohort_percentage=100)
