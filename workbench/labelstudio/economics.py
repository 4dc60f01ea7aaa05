"""What each pulled annotation kept of the boxes it started from, and what it cost.

For every submitted annotation `wb pull` brings back, the final boxes are compared with
the boxes pre-drawn for that task (the prediction the annotator started from):

- kept as drawn: a pre-drawn box submitted with its label at IoU >= ``KEPT_IOU``;
- moved: a pre-drawn box submitted with its label, moved or resized (``MATCH_IOU`` <=
  IoU < ``KEPT_IOU``);
- relabelled: a pre-drawn box submitted with another label (IoU >= ``MATCH_IOU``; where
  it moved too, it still counts once, as relabelled);
- deleted: a pre-drawn box matching no submitted box;
- drawn new: a submitted box matching no pre-drawn box.

Boxes of the same label are matched first (``geometry.match_boxes``, greedy by IoU), the
rest then across labels, so a relabelled box never takes the place of a box that kept
its label.

The prediction an annotation started from is the one Label Studio names as its
``parent_prediction`` (the labelling page sets it when an annotator starts from a
prediction); without it, the task's latest prediction made before the annotation was.
Its suspect markers (boxes `wb review send likely-label-errors` added, ``tasks.model_regions``)
are not pre-drawn model boxes: a marker the annotator keeps counts as drawn new.
Label Studio's ``lead_time`` (seconds the annotator had the task open) is recorded as it
is; None where Label Studio holds none. Skipped annotations and drafts are not counted.

``record_task_economics`` is what `wb pull` calls for each task; it writes only when the
task's annotations changed since it last recorded them, so a re-run writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..catalog.records import AnnotationEconomics, Box
from ..geometry import match_boxes
from .tasks import model_regions, result_boxes

KEPT_IOU = 0.95  # at or above: submitted as drawn (a nudge of a pixel or two)
MATCH_IOU = 0.3  # at or above: the same box, moved; below: deleted, and one drawn new


@dataclass(frozen=True)
class BoxOutcomes:
    """How one annotation's boxes came about from the pre-drawn ones."""

    kept: int = 0
    moved: int = 0
    relabelled: int = 0
    deleted: int = 0
    new: int = 0


def classify_boxes(
    predrawn: list[Box],
    final: list[Box],
    kept_iou: float = KEPT_IOU,
    match_iou: float = MATCH_IOU,
) -> BoxOutcomes:
    """Compare an annotation's final boxes with the pre-drawn boxes it started from (the
    rules in the module's docstring)."""
    if not 0 < match_iou <= kept_iou <= 1:
        raise ValueError(f"need 0 < match_iou <= kept_iou <= 1, got {match_iou}, {kept_iou}")
    a = [b.xyxy for b in predrawn]
    f = [b.xyxy for b in final]
    same = match_boxes(
        a, f, match_iou, labels=([b.label for b in predrawn], [b.label for b in final])
    )
    left_a = [i for i in range(len(a)) if i not in {p[0] for p in same}]
    left_f = [j for j in range(len(f)) if j not in {p[1] for p in same}]
    other = match_boxes([a[i] for i in left_a], [f[j] for j in left_f], match_iou)
    kept = sum(1 for _, _, iou in same if iou >= kept_iou)
    return BoxOutcomes(
        kept=kept,
        moved=len(same) - kept,
        relabelled=len(other),
        deleted=len(a) - len(same) - len(other),
        new=len(f) - len(same) - len(other),
    )


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.dict() if hasattr(obj, "dict") else dict(vars(obj))


def _iso(value: Any) -> str:
    """A Label Studio time (ISO text, or a datetime as the SDK's models parse it) as one
    comparable ISO text in UTC; "" when absent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def _id(value: Any) -> int | None:
    """A foreign key as Label Studio gives it: an id, or the object itself."""
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _stamp(annotation: dict) -> str:
    return _iso(annotation.get("updated_at") or annotation.get("created_at"))


def started_from(annotation: dict, predictions: list[dict]) -> dict | None:
    """The prediction an annotation started from: its ``parent_prediction`` when the task
    still holds it, else the latest prediction made before the annotation (None: none)."""
    parent = _id(annotation.get("parent_prediction"))
    if parent is not None:
        for p in predictions:
            if _id(p.get("id")) == parent:
                return p
    made = _iso(annotation.get("created_at"))
    before = [p for p in predictions if made and _iso(p.get("created_at")) <= made]
    return max(
        before, key=lambda p: (_iso(p.get("created_at")), _id(p.get("id")) or 0), default=None
    )


def annotation_economics(
    annotation: dict,
    predictions: list[dict],
    *,
    project_id: int,
    task_id: int,
    image_id: int | None,
    annotator: str | None,
    size: tuple[int | None, int | None],
    pulled_at: str,
) -> AnnotationEconomics:
    """One submitted annotation (as the SDK or REST API gives it) against the task's
    predictions -> its record."""
    start = started_from(annotation, predictions)
    # the boxes `wb review send` adds to mark suspect labels are not the model's
    predrawn = result_boxes(model_regions((start or {}).get("result")), *size)
    final = result_boxes(annotation.get("result") or [], *size)
    outcomes = classify_boxes(predrawn, final)
    lead = annotation.get("lead_time")
    return AnnotationEconomics(
        annotation_id=int(annotation["id"]),
        project_id=project_id,
        task_id=task_id,
        image_id=image_id,
        annotator=annotator,
        updated_at=_stamp(annotation),
        pulled_at=pulled_at,
        lead_time=float(lead) if lead is not None else None,
        prediction_id=_id(start.get("id")) if start else None,
        model_version=(start.get("model_version") or None) if start else None,
        predrawn=len(predrawn),
        final_boxes=len(final),
        kept=outcomes.kept,
        moved=outcomes.moved,
        relabelled=outcomes.relabelled,
        deleted=outcomes.deleted,
        new=outcomes.new,
    )


def record_task_economics(
    catalog,
    project_id: int,
    task_id: int,
    image_id: int | None,
    annotations: list[Any],
    predictions: list[Any],
    *,
    size: tuple[int | None, int | None],
    annotators: dict[int, str | None],
    recorded: dict[int, list[AnnotationEconomics]],
    pulled_at: str | None = None,
) -> bool:
    """Record the economics of a task's submitted annotations when they changed since
    ``recorded`` (task id -> rows as last recorded); ``annotations`` and ``predictions``
    as the SDK lists them with ``fields="all"`` (``[]``: none left, and the rows go).
    ``annotators``: annotation id -> the annotator name `wb pull` gave it. ``size``: the
    image's (width, height) in pixels. ``pulled_at``: the pull's time (UTC ISO; None:
    now). True when something was written."""
    submitted = [a for a in map(_as_dict, annotations) if not a.get("was_cancelled")]
    stamps = sorted((int(a["id"]), _stamp(a)) for a in submitted)
    before = sorted((r.annotation_id, r.updated_at or "") for r in recorded.get(task_id, []))
    if stamps == before:
        return False
    preds = [_as_dict(p) for p in predictions]
    pulled_at = pulled_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = [
        annotation_economics(
            a,
            preds,
            project_id=project_id,
            task_id=task_id,
            image_id=image_id,
            annotator=annotators.get(int(a["id"])),
            size=size,
            pulled_at=pulled_at,
        )
        for a in submitted
    ]
    catalog.replace_task_economics(project_id, task_id, rows)
    return True


def recorded_economics(catalog, project_id: int) -> dict[int, list[AnnotationEconomics]]:
    """task id -> the rows recorded for a project (what ``record_task_economics`` compares)."""
    out: dict[int, list[AnnotationEconomics]] = {}
    for row in catalog.annotation_economics(project_id):
        out.setdefault(row.task_id, []).append(row)
    return out
