"""`wb prioritize`: which unannotated images to ask people about first.

The steps, in order (FiftyOne's config -> method -> results shape):

1. the model: ``--model VERSION`` or the promoted one (``Registry.resolve``);
2. candidates: active images without annotations;
3. detections: the stored predictions of that version, and ``predict_catalog`` for the
   candidates that have none yet (unreadable images are reported, never dropped silently);
4. per image: the image-level label mapped to the model's level, the model's product
   classes (its classes minus the taxonomy's look-alike species), ``score_image``; with
   ``signal`` naming ``disagreement``, the stored answer of the classifier (``--classifier``
   or the promoted one, from `wb classify predict`) against the detections
   (``disagreement.score_disagreement``), joined to the uncertainty by
   ``disagreement.combine``;
5. features for ``diverse`` (pooled backbone features, cached per version in
   ``models/<version>/features.npz`` keyed by image id and file hash);
6. ``select_batch``; priorities stored per version (every candidate ranked, the batch
   flagged ``selected``).

Label Studio is not touched here: ``workbench.labelstudio.ordering.apply_order`` turns
the stored priorities into the order annotators see.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UnknownClassError, WorkbenchError
from ..fsutil import atomic_write_bytes, remove_leftover_temps
from ..images import UnreadableImage, open_image
from ..taxonomy import BACKGROUND, Taxonomy
from .disagreement import (
    DEFAULT_SIGNAL,
    DisagreementConfig,
    check_signal,
    classifier_claims,
    combine,
    score_disagreement,
    shared_level,
    uses_classifier,
)
from .selection import SelectionConfig, select_batch
from .uncertainty import ImageUncertainty, UncertaintyConfig, score_image

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.npz"
Progress = Callable[[str, int, int], None]  # (stage, done, total)


class NothingToPrioritize(WorkbenchError):
    """No active image without annotations is left to rank."""


class NoClassifierAnswers(WorkbenchError):
    """The disagreement signal was asked for, and the classifier has answered for none
    of the candidates."""


class ModelPredictor(Protocol):
    """What prioritising needs of a loaded model (``detection.predict.Predictor``)."""

    version: str
    classes: list[str]

    def predict(self, images: Sequence) -> list[list]: ...

    def features(self, images: Sequence) -> np.ndarray: ...


@dataclass
class PrioritizeConfig:
    model: str | None = None  # None: the promoted version
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    batch_size: int = 4  # images per forward pass
    signal: str = DEFAULT_SIGNAL  # disagreement.SIGNALS: what the ranking rests on
    classifier: str | None = None  # disagreement: None = the promoted classifier
    disagreement: DisagreementConfig = field(default_factory=DisagreementConfig)

    def __post_init__(self) -> None:
        check_signal(self.signal)


@dataclass
class PrioritizedImage:
    image_id: int
    path: str
    label: str | None  # the image's label at the model's level
    uncertainty: float
    components: dict
    boxes: list[dict]  # the model's detections (pixel xyxy)
    selected: bool = False

    def to_json(self) -> dict:
        """The ``wb prioritize --json`` entry."""
        return {"path": self.path, "uncertainty": self.uncertainty, "components": self.components}


@dataclass
class PrioritizeResult:
    version: str
    level: str
    config: PrioritizeConfig
    ranked: list[PrioritizedImage]  # every scored candidate, most uncertain first
    batch: list[PrioritizedImage]  # the selected batch, in selection order
    predicted: int = 0  # candidates the model ran on now
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    features_computed: int = 0  # diverse: features not found in the cache
    classifier: str | None = None  # the classifier version of the disagreement signal
    without_classifier: int = 0  # ranked images the classifier has no answer for

    @property
    def batch_by_uncertainty(self) -> list[PrioritizedImage]:
        return sorted(self.batch, key=lambda p: (-p.uncertainty, p.image_id))

    def to_json(self) -> list[dict]:
        return [p.to_json() for p in self.batch_by_uncertainty]

    def summary(self) -> str:
        text = (
            f"model {self.version}: ranked {len(self.ranked)} unannotated images"
            + (f" (predicted {self.predicted} now)" if self.predicted else "")
            + f"; {self.config.selection.strategy} batch of {len(self.batch)}"
        )
        if self.classifier:
            text += f"; signal {self.config.signal} with classifier {self.classifier}"
            if self.without_classifier:
                text += (
                    f" ({self.without_classifier} images have no answer of it, scored as "
                    f"agreeing: `wb classify predict --version {self.classifier} --images "
                    "unannotated` adds them)"
                )
        if self.unreadable:
            image_id, reason = self.unreadable[0]
            text += (
                f"; {len(self.unreadable)} unreadable images left out (e.g. image "
                f"{image_id}: {reason})"
            )
        return text


def product_classes(classes: Sequence[str], taxonomy: Taxonomy) -> list[str]:
    """The model's classes that are products: not a look-alike species (at any level),
    not background. A class the taxonomy does not know counts as a product."""
    lookalikes = set(taxonomy.lookalike_species())
    out = []
    for c in classes:
        if c == BACKGROUND:
            continue
        try:
            if taxonomy.species_of(c) in lookalikes:
                continue
        except UnknownClassError:
            pass
        out.append(c)
    return out


def label_at_level(label: str | None, level: str, taxonomy: Taxonomy) -> str | None:
    """The image-level label at the model's level; None when it has no place there."""
    if not label:
        return None
    return taxonomy.to_level(label, level, unknown="none")


def prioritize(
    ws,
    catalog,
    config: PrioritizeConfig | None = None,
    predictor: ModelPredictor | None = None,
    on_progress: Progress | None = None,
    engine=None,
) -> PrioritizeResult:
    """Rank the unannotated images by the model's uncertainty, select a batch, store both.

    ``engine`` (``workbench.engine``, default local) runs the prediction of images the
    model has not seen yet; diversity features are computed here."""
    from ..detection.registry import Registry

    config = config or PrioritizeConfig()
    mv = Registry.of(ws, catalog).resolve(config.model)
    level = mv.level or ws.model_level()
    taxonomy = ws.taxonomy
    loaded: list[ModelPredictor] = [predictor] if predictor is not None else []

    def model() -> ModelPredictor:
        if not loaded:
            from ..detection.predict import Predictor

            loaded.append(Predictor(mv.path, batch_size=config.batch_size))
        return loaded[0]

    candidates = catalog.images(status="active", annotated=False)
    if not candidates:
        raise NothingToPrioritize(
            "every active image is annotated already: nothing to "
            "prioritise. Ingest or un-exclude more images first."
        )
    ids = [im.id for im in candidates]
    # the classifier's side first: a missing classifier or answers fail before any work
    versus = (
        _classifier_side(ws, catalog, config, ids, level)
        if uses_classifier(config.signal)
        else None
    )
    stored = catalog.predictions(mv.version, ids)
    missing = [i for i in ids if i not in stored]
    unreadable: list[tuple[int, str]] = []
    if missing:
        from ..detection.predict import predict_catalog

        run = predict_catalog(
            ws,
            catalog,
            mv.version,
            missing,
            predictor=model() if engine is None or engine.name == "local" else predictor,
            batch_size=config.batch_size,
            on_progress=_stage(on_progress, "predict"),
            engine=engine,
        )
        unreadable = list(run.unreadable)
        stored = catalog.predictions(mv.version, ids)

    classes = list(mv.classes)
    products = product_classes(classes, taxonomy)
    ranked: list[PrioritizedImage] = []
    for im in candidates:
        if im.id not in stored:
            continue  # unreadable: reported in the result
        label = label_at_level(im.label, level, taxonomy)
        scored: ImageUncertainty = score_image(
            stored[im.id], config.uncertainty, label, classes, products, image_id=im.id
        )
        priority, components = scored.uncertainty, scored.components
        if versus is not None:
            priority, components = versus.join(im.id, stored[im.id], scored)
        ranked.append(PrioritizedImage(im.id, im.path, label, priority, components, stored[im.id]))
    if not ranked:
        raise NothingToPrioritize(
            f"none of the {len(candidates)} unannotated images could be "
            "read; see `wb status` and fix or exclude them"
        )
    ranked.sort(key=lambda p: (-p.uncertainty, p.image_id))

    features = None
    computed = 0
    if config.selection.strategy == "diverse":
        features, computed = image_features(
            mv.path,
            catalog,
            [p.image_id for p in ranked],
            model,
            on_progress=_stage(on_progress, "features"),
        )
    chosen = select_batch(
        [p.image_id for p in ranked], [p.uncertainty for p in ranked], config.selection, features
    )
    by_id = {p.image_id: p for p in ranked}
    for i in chosen:
        by_id[i].selected = True
    catalog.store_priorities(
        mv.version, [(p.image_id, p.uncertainty, p.components) for p in ranked], selected=chosen
    )
    logger.info(
        "prioritised %d images with %s; batch of %d (%s)",
        len(ranked),
        mv.version,
        len(chosen),
        config.selection.strategy,
    )
    return PrioritizeResult(
        mv.version,
        level,
        config,
        ranked,
        [by_id[i] for i in chosen],
        predicted=len(missing) - len(unreadable),
        unreadable=unreadable,
        features_computed=computed,
        classifier=versus.version if versus else None,
        without_classifier=sum(
            1 for p in ranked if versus and p.components.get("classifier_label") is None
        ),
    )


@dataclass
class _ClassifierSide:
    """The disagreement signal's inputs: one classifier version's stored answers and what
    each of its classes claims, at the level it shares with the detector."""

    version: str
    answers: dict
    claims: dict[str, frozenset[str]]
    box_label: Callable[[str], str | None]
    config: PrioritizeConfig

    def join(self, image_id: int, boxes: list[dict], scored: ImageUncertainty):
        answer = self.answers.get(image_id)
        components = {**scored.components, "uncertainty": scored.uncertainty}
        components["classifier"] = self.version
        if answer is None:
            d = None
            components.update(classifier_label=None, classifier_score=None, disagreement=None)
        else:
            found = score_disagreement(
                boxes,
                answer.probs,
                self.claims,
                self.config.disagreement,
                self.box_label,
                confident=self.config.uncertainty.confident,
            )
            d = found.score
            components.update(
                classifier_label=answer.label,
                classifier_score=answer.score,
                **found.components(),
            )
        weight = self.config.disagreement.weight
        return combine(scored.uncertainty, d, self.config.signal, weight), components


def _classifier_side(ws, catalog, config: PrioritizeConfig, ids: list[int], level: str):
    from ..classify.config import config_of
    from ..classify.dataset import class_members
    from ..detection.registry import Registry

    cmv = Registry.of(ws, catalog).resolve(config.classifier, task="classify")
    answers = catalog.classifications(cmv.version, ids)
    if not answers:
        raise NoClassifierAnswers(
            f"--signal {config.signal} needs the classifier's answers, and classifier "
            f"{cmv.version} has none for the {len(ids)} unannotated images: run `wb classify "
            f"predict --version {cmv.version} --images unannotated` first"
        )
    taxonomy = ws.taxonomy
    shared = shared_level(cmv.level, level)
    claims = classifier_claims(
        class_members(cmv.classes, config_of(cmv), taxonomy),
        shared,
        taxonomy,
        is_product=lambda x: bool(product_classes([x], taxonomy)),
    )
    return _ClassifierSide(
        cmv.version,
        answers,
        claims,
        lambda label: taxonomy.to_level(label, shared, unknown="keep"),
        config,
    )


def image_features(
    model_dir: Path,
    catalog,
    image_ids: list[int],
    model: Callable[[], ModelPredictor],
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int = 8,
) -> tuple[np.ndarray, int]:
    """(N, D) pooled backbone features in ``image_ids`` order, and how many were computed
    now. Cached in ``model_dir/features.npz``: a version's weights never change, so an
    entry stays valid while the image file's hash does."""
    cache_path = Path(model_dir) / FEATURES_FILE
    images = {im.id: im for im in catalog.images(ids=image_ids)}
    cached = _read_cache(cache_path)
    have = {i: v for i, v in cached.items() if i in images and v[0] == (images[i].sha256 or "")}
    todo = [i for i in image_ids if i not in have]
    fresh: dict[int, np.ndarray] = {}
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        pil, ok = [], []
        for i in chunk:
            try:
                pil.append(open_image(images[i].path))
                ok.append(i)
            except UnreadableImage as exc:
                raise WorkbenchError(
                    f"image {i} ({images[i].path}) became unreadable after "
                    f"prediction ({exc.reason}); run `wb prioritize` "
                    "again"
                ) from None
        for i, row in zip(ok, model().features(pil)):
            fresh[i] = np.asarray(row, dtype=np.float32)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(todo)), len(todo))
    if fresh and Path(model_dir).is_dir():
        merged = {i: v for i, v in cached.items()}
        merged.update({i: (images[i].sha256 or "", v) for i, v in fresh.items()})
        _write_cache(cache_path, merged)
    rows = [fresh[i] if i in fresh else have[i][1] for i in image_ids]
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32), len(fresh)


def _read_cache(path: Path) -> dict[int, tuple[str, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            return {int(i): (str(h), f) for i, h, f in zip(z["ids"], z["sha256"], z["features"])}
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring an unreadable feature cache %s (%s)", path, exc)
        return {}


def _write_cache(path: Path, entries: dict[int, tuple[str, np.ndarray]]) -> None:
    dims = {v.shape for _, v in entries.values()}
    if len(dims) != 1:
        logger.warning("feature vectors differ in shape; not caching them")
        return
    ids = np.array(sorted(entries), dtype=np.int64)
    buf = io.BytesIO()
    np.savez(
        buf,
        ids=ids,
        sha256=np.array([entries[i][0] for i in ids], dtype=str),
        features=np.stack([entries[i][1] for i in ids]),
    )
    remove_leftover_temps(path.parent)  # what a killed run's write left
    atomic_write_bytes(path, buf.getvalue())


def _stage(on_progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if on_progress is None:
        return None
    return lambda done, total: on_progress(stage, done, total)


def refresh_priorities(ws, catalog, config: PrioritizeConfig | None = None) -> str:
    """The ``(ws, catalog) -> summary`` shape of `wb retrain`'s hooks: re-rank with the
    (new) promoted model. Writing the order into Label Studio is
    ``labelstudio.ordering.apply_order``."""
    try:
        return prioritize(ws, catalog, config).summary()
    except NothingToPrioritize as exc:
        return str(exc)
