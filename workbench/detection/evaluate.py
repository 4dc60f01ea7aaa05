"""`wb evaluate`: run a registered model on a split (or an outside set) and measure it.

The orchestration is a list of steps: resolve the model -> collect the images and
their ground truth at the model's level -> predict -> ``metrics.evaluate_detections``
-> write the report (``reports/eval_<version>_<split>.json`` + PNG charts).

Which images: catalog images of the split that are ``active`` and ``annotated``
(duplicates, conflicts, unreadable and excluded images never count), selected and
mapped to the model's level exactly as training selects them
(``dataset.collect_samples``): every box maps to one of the model's classes and the
image label is one of them, ``background`` or unknown. A model trained on a subset of
the classes (``--per-species``) is therefore measured on the images it could get right.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError, check_choice
from ..images import UnreadableImage, open_image
from ..taxonomy import BACKGROUND
from .metrics import EvaluationResult, evaluate_detections
from .report import report_stem, save_report

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
BATCH_SIZE = 4
DEFAULT_SCORE_THRESHOLD = 0.5
SPLITS = ("train", "val", "test")


class EvaluationError(WorkbenchError):
    """Nothing to evaluate, or no model to evaluate with."""


@dataclass
class ModelHandle:
    """A loaded model and what evaluation needs to know about it."""

    version: str
    classes: list[str]
    level: str
    predictor: Any  # workbench.detection.predict.Predictor

    @classmethod
    def of(cls, predictor) -> ModelHandle:
        """From a loaded ``Predictor`` (e.g. a freshly trained, not yet registered run)."""
        return cls(
            version=predictor.version,
            classes=list(predictor.classes),
            level=predictor.level or "species",
            predictor=predictor,
        )


# ---- step 1: the model ------------------------------------------------------------
def load_model(ws, catalog, version: str | None) -> ModelHandle:
    """The named version, or the promoted one when ``version`` is None (the registry's
    errors name the known versions)."""
    from .registry import Registry

    mv = Registry.of(ws, catalog).resolve(version)
    from .predict import Predictor  # torch: only once there is a model to load

    return ModelHandle(
        version=mv.version,
        classes=list(mv.classes),
        level=mv.level or "species",
        predictor=Predictor(mv.path),
    )


# ---- step 2: ground truth at the model's level ---------------------------------------
def _to_level(ws, label: str | None, level: str) -> str | None:
    # not in the taxonomy: compared as written (it can only be missed)
    return ws.taxonomy.to_level(label, level, unknown="keep")


@dataclass
class EvalItem:
    key: str  # image id (catalog) or path (outside sets)
    path: str
    label: str | None  # at the model's level
    boxes: list | None  # Box-likes at the model's level; None: unknown


def catalog_items(ws, catalog, model: ModelHandle, split: str) -> list[EvalItem]:
    """The split's images as training sees them (``dataset.collect_samples``: the same
    scope and label mapping), so a model's test figures cover the images it was kept
    away from."""
    from ..catalog.records import Box
    from .dataset import collect_samples

    ids = [im.id for im in catalog.images(status="active", annotated=True, split=split)]
    samples = collect_samples(
        catalog, ws.taxonomy, model.classes, model.level, image_ids=ids
    ).samples
    return [EvalItem(str(s.image_id), s.path, s.label, [Box(*b) for b in s.boxes]) for s in samples]


def outside_items(ws, model: ModelHandle, images_path: str | Path, fmt: str) -> list[EvalItem]:
    from ..catalog.records import Box
    from ..formats import read

    known = [*ws.taxonomy.all_labels, BACKGROUND]
    items = []
    for rec in read(images_path, fmt, known_labels=known):
        label = _to_level(ws, rec.label, model.level)
        gt = (
            None
            if rec.boxes is None
            else [
                Box(_to_level(ws, b.label, model.level), b.x1, b.y1, b.x2, b.y2) for b in rec.boxes
            ]
        )
        items.append(EvalItem(rec.path, rec.path, label, gt))
    return items


def split_unknown(items: list[EvalItem], classes: list[str]) -> tuple[list[EvalItem], dict]:
    """(the items a model with ``classes`` can be scored on, what was left out): an image
    whose label or any box's label is neither one of the classes nor background would
    count as always wrong, so it is left out of every score, and said so."""
    known = {*classes, BACKGROUND}
    kept, left, names = [], 0, set()
    for it in items:
        labels = {it.label} | {b.label for b in it.boxes or []}
        strange = {x for x in labels if x is not None and x not in known}
        if strange:
            left += 1
            names |= strange
        else:
            kept.append(it)
    n = f"{left} image{'' if left == 1 else 's'}"
    note = (
        f"left out {n} of classes the model does not know: {', '.join(sorted(names))} "
        f"(its classes: {', '.join(classes)}); they are in no score"
    )
    return kept, {"images": left, "classes": sorted(names), "note": note}


# ---- step 3: predictions ---------------------------------------------------------------
def predict_items(
    predictor,
    items: list[EvalItem],
    on_progress: ProgressFn | None = None,
    batch_size: int = BATCH_SIZE,
) -> tuple[dict[str, list], list[str]]:
    """Detections per item key; unreadable files are returned, not dropped silently."""
    detections: dict[str, list] = {}
    unreadable: list[str] = []
    total = len(items)
    for start in range(0, total, batch_size):
        batch, pictures = [], []
        for item in items[start : start + batch_size]:
            try:
                pictures.append(open_image(item.path))
                batch.append(item)
            except UnreadableImage as exc:
                logger.warning("left out of the evaluation: %s", exc)
                unreadable.append(item.path)
        if pictures:
            for item, dets in zip(batch, predictor.predict(pictures)):
                detections[item.key] = list(dets)
        if on_progress:
            on_progress(min(start + batch_size, total), total)
    return detections, unreadable


# ---- step 4+5: measure and report ---------------------------------------------------------
def _measure(
    model: ModelHandle,
    items: list[EvalItem],
    split: str,
    score_threshold: float,
    on_progress: ProgressFn | None,
) -> EvaluationResult:
    detections, unreadable = predict_items(model.predictor, items, on_progress)
    kept = [it for it in items if it.path not in set(unreadable)]
    result = evaluate_detections(
        gt={it.key: it.boxes for it in kept},
        predictions=detections,
        classes=model.classes,
        image_labels={it.key: it.label for it in kept},
        score_threshold=score_threshold,
    )
    result.model, result.split = model.version, split
    result.info.update({"level": model.level})
    if unreadable:
        result.info["unreadable"] = unreadable
    return result


def evaluate_model(
    ws,
    catalog,
    version: str | None = None,
    split: str = "test",
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    on_progress: ProgressFn | None = None,
    save: bool = True,
    model: ModelHandle | None = None,
) -> EvaluationResult:
    """Evaluate a registered model (default: the promoted one) on a catalog split and
    write ``reports/eval_<version>_<split>.json``, ``.png`` and ``_confusion.png``
    (their paths are in ``result.info["reports"]``)."""
    check_choice("split", split, SPLITS, error=EvaluationError)
    model = model or load_model(ws, catalog, version)
    items = catalog_items(ws, catalog, model, split)
    if not items:
        raise EvaluationError(
            f"no annotated, active images in the {split} split for model {model.version} "
            f"(classes {', '.join(model.classes)}); splits are assigned by `wb retrain`, "
            "or choose another --split"
        )
    result = _measure(model, items, split, score_threshold, on_progress)
    if save:
        paths = save_report(result, ws.reports_dir)
        result.info["reports"] = {k: str(p) for k, p in paths.items()}
    return result


def evaluate_outside(
    ws,
    version: str | None,
    images_path: str | Path,
    fmt: str,
    catalog=None,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    on_progress: ProgressFn | None = None,
    save: bool = True,
    model: ModelHandle | None = None,
) -> EvaluationResult:
    """Evaluate on a set outside the catalog (``--images PATH --format voc|coco|folders``),
    read with the ingest readers and never added to the catalog. Folder sets carry only
    image labels: they give image accuracy, not box metrics. The report is
    ``reports/eval_<version>_outside-<folder name>.json``."""
    images_path = Path(images_path).expanduser().resolve()
    if model is None:
        own = catalog is None
        catalog = catalog or ws.open_catalog()
        try:
            model = load_model(ws, catalog, version)
        finally:
            if own:
                catalog.close()
    items = outside_items(ws, model, images_path, fmt)
    if not items:
        raise EvaluationError(f"no images found in {images_path} (--format {fmt})")
    items, unknown = split_unknown(items, model.classes)
    if not items:
        raise EvaluationError(
            f"none of the images in {images_path} is of a class model {model.version} knows "
            f"(theirs: {', '.join(unknown['classes'])}; the model's: "
            f"{', '.join(model.classes)}): evaluate a model trained on those classes"
        )
    result = _measure(model, items, "outside", score_threshold, on_progress)
    result.info.update({"source": str(images_path), "format": fmt})
    if unknown["images"]:
        result.info["unknown_classes"] = unknown
    if save:
        stem = report_stem(model.version, f"outside-{images_path.name}")
        paths = save_report(result, ws.reports_dir, stem=stem)
        result.info["reports"] = {k: str(p) for k, p in paths.items()}
    return result
