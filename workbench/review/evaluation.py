"""COCO-style evaluation of each model version's predictions against ground truth.

Per version two FiftyOne evaluations: ``eval_<v>`` matches boxes of the same
class only (the usual TP/FP/FN and mAP@0.5), ``eval_<v>_agnostic`` matches boxes
of any class, so a box in the right place with the wrong class (ivory vs its
resin look-alike) shows as a *confusion*: a prediction marked ``fp`` that is
matched to a ground-truth box (``eval_<v>_agnostic_id`` set).

Only active, annotated images are evaluated (elsewhere there is no ground truth).
An evaluation is redone only when the ground truth or predictions it covers
changed (a fingerprint of their content hashes is kept in ``dataset.info``).
Runs inside the FiftyOne worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .dataset import KEY_FIELD, SYNC_FIELD
from .samples import GT_FIELD, content_hash, field_key, pred_field

log = logging.getLogger(__name__)

IOU = 0.5
INFO_KEY = "wb_evaluations"


@dataclass(frozen=True)
class EvalKeys:
    version: str

    @property
    def pred_field(self) -> str:
        return pred_field(self.version)

    @property
    def classwise(self) -> str:
        return f"eval_{field_key(self.version)}"

    @property
    def agnostic(self) -> str:
        return f"eval_{field_key(self.version)}_agnostic"


def evaluated_view(ds):
    """The samples evaluations cover: active images with known ground truth."""
    from fiftyone import ViewField as F

    return ds.match((F("status") == "active") & (F("annotated") == True))  # noqa: E712


def prune_evaluations(ds, versions: list[str]) -> list[str]:
    """Delete evaluations of versions that are no longer in the catalog."""
    wanted = set()
    for v in versions:
        keys = EvalKeys(v)
        wanted |= {keys.classwise, keys.agnostic}
    stale = [k for k in ds.list_evaluations() if k.startswith("eval_") and k not in wanted]
    for key in stale:
        ds.delete_evaluation(key)
    info = dict(ds.info.get(INFO_KEY) or {})
    for v in list(info):
        if v not in versions:
            info.pop(v)
    ds.info[INFO_KEY] = info
    ds.save()
    return stale


def _fingerprint(view, keys: EvalKeys) -> str:
    rows = sorted(
        (i, (s or {}).get(GT_FIELD), (s or {}).get(keys.pred_field))
        for i, s in zip(view.values(KEY_FIELD), view.values(SYNC_FIELD))
    )
    return content_hash([IOU, keys.pred_field, rows])


def _metrics(view, keys: EvalKeys, mAP: float | None) -> dict:
    k = keys.classwise
    return {
        "mAP50": mAP,
        "tp": int(view.sum(f"{k}_tp") or 0),
        "fp": int(view.sum(f"{k}_fp") or 0),
        "fn": int(view.sum(f"{k}_fn") or 0),
        "images": len(view),
    }


def evaluate_versions(ds, versions: list[str]) -> dict[str, dict]:
    """Evaluate every version (skipping unchanged ones); ``{version: metrics}``."""
    view = evaluated_view(ds)
    info = dict(ds.info.get(INFO_KEY) or {})
    out = {}
    for v in versions:
        keys = EvalKeys(v)
        fp = _fingerprint(view, keys)
        cached = info.get(v)
        if (
            cached
            and cached.get("fingerprint") == fp
            and ds.has_evaluation(keys.classwise)
            and ds.has_evaluation(keys.agnostic)
        ):
            out[v] = cached["metrics"]
            log.info("evaluation of %s unchanged; kept", v)
            continue
        for key in (keys.classwise, keys.agnostic):
            if ds.has_evaluation(key):
                ds.delete_evaluation(key)
        results = view.evaluate_detections(
            keys.pred_field,
            gt_field=GT_FIELD,
            eval_key=keys.classwise,
            method="coco",
            iou=IOU,
            classwise=True,
            compute_mAP=True,
            iou_threshs=[IOU],
            progress=False,
        )
        view.evaluate_detections(
            keys.pred_field,
            gt_field=GT_FIELD,
            eval_key=keys.agnostic,
            method="coco",
            iou=IOU,
            classwise=False,
            progress=False,
        )
        mAP = float(results.mAP()) if len(view) else -1.0
        metrics = _metrics(view, keys, mAP if mAP >= 0 else None)
        info[v] = {
            "fingerprint": fp,
            "metrics": metrics,
            "eval_key": keys.classwise,
            "agnostic_key": keys.agnostic,
            "pred_field": keys.pred_field,
        }
        out[v] = metrics
        log.info("evaluated %s: %s", v, metrics)
    ds.info[INFO_KEY] = info
    ds.save()
    return out
