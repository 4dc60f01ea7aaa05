"""The review build, as a list of steps: catalog -> samples -> dataset -> evaluations -> views.

Runs inside the FiftyOne worker process (see ``worker.py``), never in ``wb`` itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..catalog import Catalog
from ..errors import WorkbenchError
from ..explain.store import read_explanations
from .dataset import open_dataset, sync_dataset
from .environment import dataset_name
from .evaluation import evaluate_versions, prune_evaluations
from .label_errors import (
    NoGroundTruth,
    NoPredictions,
    NoPromotedModel,
    Thresholds,
    catalog_label_errors,
)
from .samples import (
    LABEL_ERRORS_FIELD,
    heatmap_field,
    pred_field,
    read_review_samples,
    sample_counts,
)
from .views import THRESHOLDS_KEY, review_views, save_review_views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVersionInfo:
    """A version with predictions; registered ones carry their ``models`` row."""

    version: str
    parent: str | None = None
    created_at: str | None = None
    promoted: bool = False
    promoted_at: str | None = None
    level: str | None = None


def versions_with_predictions(catalog) -> list[ModelVersionInfo]:
    """Oldest first: registered versions by creation time, then unregistered ones."""
    registered = {m.version: m for m in catalog.models()}
    order = list(registered)
    infos = []
    for v in catalog.versions_with_predictions():
        m = registered.get(v)
        infos.append(
            ModelVersionInfo(v)
            if m is None
            else ModelVersionInfo(v, m.parent, m.created_at, m.promoted, m.promoted_at, m.level)
        )
    return sorted(
        infos,
        key=lambda i: (
            i.version not in registered,
            order.index(i.version) if i.version in registered else 0,
            i.version,
        ),
    )


def choose_model(infos: list[ModelVersionInfo], model: str | None) -> str | None:
    """The version the views are about: ``model`` if given, else the most recently
    promoted version with predictions, else the newest one; ``None`` if none."""
    versions = [i.version for i in infos]
    if model is not None:
        if model not in versions:
            known = ", ".join(versions) or "none yet (run `wb retrain` first)"
            raise WorkbenchError(
                f"model version '{model}' has no predictions in the catalog. "
                f"Versions with predictions: {known}"
            )
        return model
    promoted = [i for i in infos if i.promoted]
    if promoted:
        return max(promoted, key=lambda i: i.promoted_at or "").version
    return versions[-1] if versions else None


def previous_model(infos: list[ModelVersionInfo], model: str | None) -> str | None:
    """The version ``model`` is compared with: its parent when that has predictions,
    else the version before it."""
    if model is None:
        return None
    versions = [i.version for i in infos]
    info = next(i for i in infos if i.version == model)
    if info.parent in versions and info.parent != model:
        return info.parent
    idx = versions.index(model)
    return versions[idx - 1] if idx > 0 else None


def review_label_errors(
    catalog, taxonomy, model: str | None, level: str, thresholds: Thresholds | None = None
):
    """`wb review errors`' report (``thresholds``, default: its defaults) for the version the views are
    about, or None when it cannot be made (no such detector, no ground truth, no
    predictions on the annotated images): the view is then empty, not an error."""
    if model is None:
        return None
    try:
        return catalog_label_errors(catalog, taxonomy, model, thresholds, level=level)
    except (NoPromotedModel, NoGroundTruth, NoPredictions) as exc:
        log.info("no label-error scores for %s: %s", model, exc)
        return None


StageFn = Callable[[str, dict], None]


def build_review_dataset(
    ws,
    model: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_stage: StageFn | None = None,
    thresholds: Thresholds | None = None,
) -> dict:
    """Bring the workspace's review dataset up to date; returns the summary
    ``wb review --json`` prints. ``on_stage(name, info)`` is called as each step starts:
    ``sync`` (info: ``sample_counts``, what is written), ``evaluate`` (``versions``),
    ``views``."""
    stage = on_stage or (lambda name, info: None)
    started = time.monotonic()
    catalog = Catalog.open(ws.catalog_path, read_only=True)
    try:
        infos = versions_with_predictions(catalog)
        selected = choose_model(infos, model)
        previous = previous_model(infos, selected)
        versions = [i.version for i in infos]
        level = (
            next((i.level for i in infos if i.version == selected and i.level), None)
            or ws.model_level()
        )
        # what `wb explain` wrote for the chosen model (files only: no CAM is computed here)
        explained = (selected, read_explanations(ws.reports_dir, selected)) if selected else None
        thresholds = thresholds or Thresholds()
        errors = review_label_errors(catalog, ws.taxonomy, selected, level, thresholds)
        samples, unc_version = read_review_samples(
            catalog,
            ws.taxonomy,
            level,
            versions,
            uncertainty_version=selected,
            explained=explained,
            label_errors=errors,
        )
    finally:
        catalog.close()

    timings = {"read_catalog": time.monotonic() - started}
    name = dataset_name(ws)
    counts = sample_counts(samples)
    stage("sync", counts)
    ds = open_dataset(name)
    prune_evaluations(ds, versions)
    stats = sync_dataset(
        ds,
        samples,
        [pred_field(v) for v in versions],
        on_progress,
        heatmap_fields=[heatmap_field(selected)] if selected else [],
    )
    timings["sync"] = time.monotonic() - started - sum(timings.values())
    stage("evaluate", {"versions": versions, "annotated": counts["annotated"]})
    evaluations = evaluate_versions(ds, versions)
    timings["evaluate"] = time.monotonic() - started - sum(timings.values())
    stage("views", {})
    view_samples = save_review_views(ds, review_views(ds, selected, previous), selected)
    ds.info[THRESHOLDS_KEY] = asdict(thresholds)  # what `wb review send` marks with
    ds.save()
    timings["views"] = time.monotonic() - started - sum(timings.values())
    return {
        "dataset": name,
        "samples": len(ds),
        "views": list(view_samples),
        "evaluations": evaluations,
        "model": selected,
        "previous_model": previous,
        "level": level,
        "uncertainty_from": unc_version,
        "view_samples": view_samples,
        "sync": stats.as_dict(),
        "explained_images": len(explained[1]) if explained else 0,
        "label_errors": (
            None
            if errors is None
            else {
                "images": len(errors.image_scores),
                "suspects": len(errors.suspects),
                "thresholds": asdict(thresholds),
            }
        ),
        "seconds": round(time.monotonic() - started, 2),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }


def describe_review_dataset(ws) -> dict:
    """Per sample and per saved view, what the dataset holds (a debugging aid, and
    what the tests compare with the catalog)."""
    import fiftyone as fo

    name = dataset_name(ws)
    if not fo.dataset_exists(name):
        raise WorkbenchError(f"no review dataset yet for {ws.root}; run `wb review --no-launch`")
    ds = fo.load_dataset(name)
    schema = ds.get_field_schema()
    count_fields = sorted(
        f for f in schema if f.startswith("eval_") and f.rsplit("_", 1)[-1] in ("tp", "fp", "fn")
    )
    label_fields = ["ground_truth"] + sorted(f for f in schema if f.startswith("pred_"))
    if LABEL_ERRORS_FIELD in schema:
        label_fields.append(LABEL_ERRORS_FIELD)
    heatmap_fields = sorted(f for f in schema if f.startswith("heatmap_"))
    samples = []
    for s in ds.select_fields(
        [
            "wb_image_id",
            "filepath",
            "split",
            "status",
            "annotated",
            "dedup_group",
            "uncertainty",
            "label_error_score",
            *label_fields,
            *heatmap_fields,
            *count_fields,
        ]
    ):
        entry = {
            "image_id": s["wb_image_id"],
            "filepath": s.filepath,
            "split": s["split"],
            "status": s["status"],
            "annotated": s["annotated"],
            "dedup_group": s["dedup_group"],
            "uncertainty": s["uncertainty"],
            "label_error_score": s["label_error_score"],
        }
        for f in label_fields:
            dets = s[f]
            entry[f] = (
                None
                if dets is None
                else [
                    {
                        "label": d.label,
                        "bounding_box": list(d.bounding_box),
                        "confidence": d.confidence,
                        **({"probs": d["probs"]} if d.has_field("probs") else {}),
                        **{
                            k: d[k]
                            for k in ("cam_inside_share", "cam_flagged", "gt_label", "predicted")
                            if d.has_field(k) and d[k] is not None
                        },
                    }
                    for d in dets.detections
                ]
            )
        for f in heatmap_fields:
            entry[f] = (
                None if s[f] is None else {"map_path": s[f].map_path, "method": s[f]["method"]}
            )
        for f in count_fields:
            entry[f] = s[f]
        samples.append(entry)
    views = {v: sorted(ds.load_saved_view(v).values("wb_image_id")) for v in ds.list_saved_views()}
    return {
        "dataset": name,
        "samples": samples,
        "views": views,
        "evaluations": ds.list_evaluations(),
        "info": dict(ds.info),
    }
