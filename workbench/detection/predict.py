"""Running a registered model: detections with full class probabilities, and pooled
backbone features for diversity selection.

``Predictor`` loads a version folder once and is then called many times (the ML
backend holds one; swapping versions is the caller's business). Boxes come back in
the pixel frame of the images given (the model resizes internally and maps back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from ..images import UnreadableImage, open_image
from ..taxonomy import BACKGROUND
from .registry import Registry, load_config
from .train import TrainConfig, build_model

logger = logging.getLogger(__name__)


@dataclass
class Detection:
    """One detected box. ``probs`` holds every class's softmax probability for the box,
    ``background`` included (they sum to 1)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    probs: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The stored predictions format: ``{"label","x1","y1","x2","y2","score","probs"}``."""
        return {
            "label": self.label,
            "x1": self.x1,
            "y1": self.y1,
            "x2": self.x2,
            "y2": self.y2,
            "score": self.score,
            "probs": dict(self.probs),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Detection:
        return cls(
            d["label"], d["x1"], d["y1"], d["x2"], d["y2"], d["score"], dict(d.get("probs") or {})
        )


def image_tensor(image: Image.Image) -> torch.Tensor:
    """The (3, H, W) float tensor in [0, 1] that a detector takes: the one conversion
    of a photo, whichever runtime runs the model."""
    return TF.to_tensor(image.convert("RGB"))


class LoadedVersion:
    """What every runtime of a registered version shares: its name, classes and level
    (from its ``config.json``), and turning a model's raw outputs into ``Detection``s."""

    def __init__(self, model_dir: Path | str):
        self.model_dir = Path(model_dir)
        cfg = load_config(self.model_dir)
        self.version: str = cfg.get("version") or self.model_dir.name
        self.classes: list[str] = list(cfg["classes"])
        self.level: str | None = cfg.get("level")
        self.config = TrainConfig.from_dict(cfg["train"])
        self._names = [BACKGROUND, *self.classes]

    def detections(self, boxes, labels, scores, probs) -> list[Detection]:
        """One image's detections from the model's four outputs (array-likes: (K, 4)
        pixel xyxy, (K,) labels counted from 1 = the first class, (K,) scores, (K, C+1)
        probabilities with column 0 = background)."""
        return [
            Detection(
                self.classes[int(lbl) - 1],
                *(round(float(v), 2) for v in box),
                score=float(score),
                probs={n: float(p) for n, p in zip(self._names, row)},
            )
            for box, lbl, score, row in zip(
                np.asarray(boxes, dtype=np.float32).tolist(),
                np.asarray(labels).tolist(),
                np.asarray(scores, dtype=np.float32).tolist(),
                np.asarray(probs, dtype=np.float32),
            )
        ]


class Predictor(LoadedVersion):
    """A loaded model version. ``predict(images)`` and ``features(images)`` take PIL
    images (RGB, EXIF-corrected: use ``workbench.images.open_image``)."""

    def __init__(
        self,
        model_dir: Path | str,
        device: str | torch.device | None = None,
        score_threshold: float | None = None,
        batch_size: int = 4,
    ):
        super().__init__(model_dir)
        self.device = (
            torch.device(device)
            if device
            else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.batch_size = batch_size
        model = build_model(self.config, self.classes, load_weights=False)
        state = torch.load(self.model_dir / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        if score_threshold is not None:
            model.roi_heads.score_thresh = score_threshold
        self.model = model.to(self.device).eval()

    @classmethod
    def from_registry(cls, ws, catalog, version: str | None = None, **kw) -> Predictor:
        """The named version, or the promoted one."""
        return cls(Registry.of(ws, catalog).resolve(version).path, **kw)

    def _batches(self, images: Sequence[Image.Image]):
        for i in range(0, len(images), self.batch_size):
            yield [image_tensor(im).to(self.device) for im in images[i : i + self.batch_size]]

    def _autocast(self):
        return torch.autocast(self.device.type, enabled=self.device.type == "cuda")

    @torch.inference_mode()
    def predict(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for batch in self._batches(images):
            with self._autocast():
                results = self.model(batch)
            for r in results:
                out.append(
                    self.detections(
                        r["boxes"].float().cpu().numpy(),
                        r["labels"].cpu().numpy(),
                        r["scores"].float().cpu().numpy(),
                        r["probs"].float().cpu().numpy(),
                    )
                )
        return out

    @torch.inference_mode()
    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32: each image's backbone maps, average-pooled (FPN levels averaged)."""
        rows = []
        for batch in self._batches(images):
            with self._autocast():
                image_list, _ = self.model.transform(batch)
                maps = self.model.backbone(image_list.tensors)
            levels = [m.float().mean(dim=(2, 3)) for k, m in maps.items() if k != "pool"]
            rows.append(torch.stack(levels).mean(0).cpu().numpy())
        if not rows:
            return np.zeros((0, self.model.backbone.out_channels), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32)


def load_predictor(model_dir: Path | str, runtime: str = "torch", **kw) -> LoadedVersion:
    """The version in ``model_dir`` ready to ``predict`` on ``runtime``."""
    from ..errors import check_choice
    from .names import RUNTIMES

    check_choice("runtime", runtime, RUNTIMES)
    if runtime == "onnx":
        from .onnx import OnnxPredictor

        return OnnxPredictor(model_dir, **kw)
    return Predictor(model_dir, **kw)


@dataclass
class PredictionRun:
    version: str
    images: int
    detections: int
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (image id, reason)


def _predict_chunk(predictor, chunk: list[tuple[int, str]]):
    """One engine call: open a chunk's images and predict them as one batch. Returns
    ``(image ids, detections as stored dicts, [(image id, path, reason)])``."""
    ids, pil, unreadable = [], [], []
    for image_id, path in chunk:
        try:
            pil.append(open_image(path))
            ids.append(image_id)
        except UnreadableImage as exc:
            unreadable.append((image_id, path, exc.reason))
    dets = predictor.predict(pil) if pil else []
    return ids, [[d.to_dict() for d in ds] for ds in dets], unreadable


def predict_catalog(
    ws,
    catalog,
    version: str | None,
    image_ids: Iterable[int],
    on_progress: Callable[[int, int], None] | None = None,
    predictor: Predictor | None = None,
    batch_size: int = 4,
    engine=None,
) -> PredictionRun:
    """Run ``version`` (default: the promoted model) on catalog images and store each
    image's detections in the ``predictions`` table. Unreadable images are returned,
    never dropped silently.

    ``engine`` (``workbench.engine``, default local) runs the model: on Ray, one
    ``Predictor`` per actor loads the version's folder (which every node must see);
    ``predictor`` is then not used. Images go in the same batches of ``batch_size`` on
    every engine, and each batch's detections are stored as they arrive, so an
    interrupted run keeps them (callers predict only images without predictions)."""
    from functools import partial

    from ..engine import check_worker_read, open_engine

    engine = engine or open_engine()
    if engine.name == "local":
        predictor = predictor or Predictor.from_registry(
            ws, catalog, version, batch_size=batch_size
        )
        factory, model_version = (lambda: predictor), predictor.version
    else:
        model_dir = (
            predictor.model_dir
            if predictor is not None
            else Registry.of(ws, catalog).resolve(version).path
        )
        model_version = LoadedVersion(model_dir).version
        factory = partial(Predictor, str(model_dir), batch_size=batch_size)
    images = catalog.images(ids=list(image_ids))
    chunks = [
        [(rec.id, rec.path) for rec in images[i : i + batch_size]]
        for i in range(0, len(images), batch_size)
    ]
    total, done, n_dets = len(images), 0, 0
    unreadable: list[tuple[int, str]] = []
    for ids, dets, bad in engine.map_with_model(factory, _predict_chunk, chunks):
        for _, path, reason in bad:
            check_worker_read(path, reason, engine)
        unreadable += [(image_id, reason) for image_id, _, reason in bad]
        if ids:
            catalog.store_predictions(model_version, dict(zip(ids, dets)))
            n_dets += sum(len(ds) for ds in dets)
        done += len(ids) + len(bad)
        if on_progress is not None:
            on_progress(done, total)
    if unreadable:
        logger.warning("%d images could not be read for prediction", len(unreadable))
    return PredictionRun(model_version, total - len(unreadable), n_dets, unreadable)
