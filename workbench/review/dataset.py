"""Keep the workspace's FiftyOne dataset in step with the catalog.

Runs inside the FiftyOne worker process (``worker.py``), after the environment
is set: fiftyone is imported inside the functions. Each sample keeps, in
``wb_sync``, one content hash per field group (see ``samples.py``); a re-run
writes only the groups whose hash changed, adds new images, and deletes samples
of images that left the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .samples import BASE_GROUP, GT_FIELD, LABEL_ERRORS_FIELD, SCALAR_FIELDS, ReviewSample

log = logging.getLogger(__name__)

KEY_FIELD = "wb_image_id"
SYNC_FIELD = "wb_sync"
PRED_PREFIX = "pred_"
HEATMAP_PREFIX = "heatmap_"
ADD_BATCH = 2000

ProgressFn = Callable[[int, int], None]


@dataclass
class SyncStats:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    removed_fields: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "removed_fields": list(self.removed_fields),
        }


def open_dataset(name: str):
    """The persistent dataset, created with its schema on first use."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.add_sample_field(KEY_FIELD, fo.IntField)
    ds.add_sample_field(SYNC_FIELD, fo.DictField)
    for fname, ftype in (
        ("image_label", fo.StringField),
        ("split", fo.StringField),
        ("status", fo.StringField),
        ("annotated", fo.BooleanField),
        ("dedup_group", fo.IntField),
        ("dedup_kind", fo.StringField),
        ("dedup_keep", fo.BooleanField),
        ("uncertainty", fo.FloatField),
        ("priority_rank", fo.IntField),
        ("label_error_score", fo.FloatField),
    ):
        ds.add_sample_field(fname, ftype)
    for fname in (GT_FIELD, LABEL_ERRORS_FIELD):
        ds.add_sample_field(fname, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    ds.create_index(KEY_FIELD, unique=True)
    return ds


def _detections(boxes: list[dict] | None):
    import fiftyone as fo

    if boxes is None:
        return None
    return fo.Detections(
        detections=[fo.Detection(**{k: v for k, v in b.items() if v is not None}) for b in boxes]
    )


def _heatmap(h: dict | None):
    import fiftyone as fo

    if h is None:
        return None
    # the grey PNGs of `wb explain`: 0..255
    return fo.Heatmap(map_path=h["map_path"], range=[0, 255], method=h["method"], layer=h["layer"])


def _metadata(s: ReviewSample):
    import fiftyone as fo

    if not (s.width and s.height):
        return None
    return fo.ImageMetadata(width=s.width, height=s.height)


def _new_sample(s: ReviewSample):
    import fiftyone as fo

    sample = fo.Sample(filepath=s.filepath, metadata=_metadata(s))
    sample[KEY_FIELD] = s.image_id
    for k, v in s.fields.items():
        sample[k] = v
    sample[GT_FIELD] = _detections(s.ground_truth)
    for name, boxes in s.predictions.items():
        sample[name] = _detections(boxes)
    for name, h in s.heatmaps.items():
        sample[name] = _heatmap(h)
    sample[LABEL_ERRORS_FIELD] = _detections(s.label_errors)
    sample[SYNC_FIELD] = s.hashes()
    return sample


def _group_values(s: ReviewSample, group: str) -> dict:
    """Field -> value for one field group of a sample."""
    if group == BASE_GROUP:
        return {
            "filepath": s.filepath,
            "metadata": _metadata(s),
            **{k: s.fields.get(k) for k in SCALAR_FIELDS},
        }
    if group == GT_FIELD:
        return {GT_FIELD: _detections(s.ground_truth)}
    if group in s.heatmaps:
        return {group: _heatmap(s.heatmaps[group])}
    if group == LABEL_ERRORS_FIELD:
        return {LABEL_ERRORS_FIELD: _detections(s.label_errors)}
    return {group: _detections(s.predictions[group])}


def sync_dataset(
    ds,
    samples: list[ReviewSample],
    pred_fields: list[str],
    on_progress: ProgressFn | None = None,
    heatmap_fields: list[str] = (),
) -> SyncStats:
    """Make ``ds`` hold exactly ``samples``; returns what changed."""
    import fiftyone as fo

    stats = SyncStats()
    schema = ds.get_field_schema()
    # fields a dataset built by an earlier `wb` lacks
    if "label_error_score" not in schema:
        ds.add_sample_field("label_error_score", fo.FloatField)
    if LABEL_ERRORS_FIELD not in schema:
        ds.add_sample_field(
            LABEL_ERRORS_FIELD, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections
        )
    for name in pred_fields:
        if name not in schema:
            ds.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    for name in heatmap_fields:
        if name not in schema:
            ds.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap)
    stale_fields = tuple(
        f
        for f in schema
        if (f.startswith(PRED_PREFIX) and f not in pred_fields)
        or (f.startswith(HEATMAP_PREFIX) and f not in heatmap_fields)
    )
    for name in stale_fields:
        ds.delete_sample_field(name)
    stats.removed_fields = stale_fields

    existing = dict(zip(ds.values(KEY_FIELD), zip(ds.values("id"), ds.values(SYNC_FIELD))))
    wanted = {s.image_id for s in samples}
    gone = [sid for image_id, (sid, _) in existing.items() if image_id not in wanted]
    if gone:
        ds.delete_samples(gone)
        stats.removed = len(gone)

    total, done = len(samples), 0
    new: list = []
    updates: dict[str, dict[str, object]] = {}  # field -> {sample id: value}
    sync_updates: dict[str, dict] = {}
    for s in samples:
        hashes = s.hashes()
        if s.image_id not in existing:
            new.append(_new_sample(s))
            if len(new) >= ADD_BATCH:
                ds.add_samples(new, progress=False)
                done += len(new)
                new = []
                if on_progress:
                    on_progress(done, total)
            continue
        sid, old = existing[s.image_id]
        old = old or {}
        changed = [g for g, h in hashes.items() if old.get(g) != h]
        if changed:
            for group in changed:
                for fname, value in _group_values(s, group).items():
                    updates.setdefault(fname, {})[sid] = value
            sync_updates[sid] = hashes
            stats.updated += 1
        else:
            stats.unchanged += 1
        done += 1
    if new:
        ds.add_samples(new, progress=False)
        done += len(new)
    stats.added = sum(1 for s in samples if s.image_id not in existing)
    for fname, values in updates.items():
        ds.set_values(fname, values, key_field="id")
    if sync_updates:
        ds.set_values(SYNC_FIELD, sync_updates, key_field="id")
    if on_progress:
        on_progress(total, total)
    log.info("review dataset %s: %s", ds.name, stats.as_dict())
    return stats
