"""A registered version as an ONNX graph: the export, checked against torch before it is
kept (`wb models export`), and the ONNX Runtime predictor that serves it
(`wb serve --runtime onnx`).

The graph is the whole detector for one image already at the model's input size (its
longer side ``image_size``): in, a (3, H, W) float image in [0, 1]; out, boxes in that
image's pixels, labels, scores and every class's probabilities. Normalising, the RPN and
NMS are inside it. The resize to the input size is not: ``OnnxPredictor`` does it with
torchvision's own function (the very pixels ``Predictor`` gets) and scales the boxes
back, because ONNX Runtime's linear Resize gives other pixels than torch's bilinear
interpolate at some factors (measured: 1.25, 2.5 and 5, so 400x300, 800x600 and
1600x1200 photos at 320 px, up to 1.8 apart after normalising; at 2, 3 or 6.3 they
agree). Otherwise it shares ``Predictor``'s pre- and post-processing (``image_tensor``,
``LoadedVersion.detections``) and adds only a session.

An export is kept only when ONNX Runtime gives torch's detections on the verification
images (the version's val split, up to ``VAL_IMAGES``, and two synthetic photos of other
shapes) within ``TOLERANCE``: the same number of boxes, and each torch box matched by one
of the same label with IoU >= 0.99, |score difference| <= 1e-3 and every class
probability within 1e-3. Otherwise the file is dropped and the command says where it
differed. ``model.onnx`` is found by name in the version's folder; ``model.onnx.json``
beside it records the check and the file's sha256, which the predictor compares before
serving it, so a file changed or broken since is refused, not served.

``onnx`` and ``onnxruntime`` are an optional extra (``pip install 'workbench[onnx]'``);
nothing else in ``wb`` imports them.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import transform as rcnn_transform
from torchvision.models.detection.transform import _resize_image_and_masks

from ..errors import WorkbenchError
from ..geometry import iou_xyxy
from ..images import UnreadableImage, open_image, sha256_file
from .names import DEFAULT_OPSET, OPSETS
from .predict import Detection, LoadedVersion, Predictor, image_tensor
from .registry import DATA, WEIGHTS, ModelVersion, Registry

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
RECORD_FILE = "model.onnx.json"
VAL_IMAGES = 4
INPUT = "image"
OUTPUTS = ("boxes", "labels", "scores", "probs")
INSTALL = "pip install 'workbench[onnx]'"


@dataclass(frozen=True)
class Tolerance:
    """How close ONNX Runtime's detections must be to torch's for an export to be kept."""

    min_iou: float = 0.99
    max_score_diff: float = 1e-3
    max_prob_diff: float = 1e-3

    def describe(self) -> str:
        return (
            f"same count and labels, IoU >= {self.min_iou:g}, |score diff| <= "
            f"{self.max_score_diff:g}, |probability diff| <= {self.max_prob_diff:g}"
        )


TOLERANCE = Tolerance()


class OnnxUnavailable(WorkbenchError):
    """``onnx`` or ``onnxruntime`` is not installed."""


class NoOnnxModel(WorkbenchError):
    """The version has no verified ``model.onnx``."""


class OnnxMismatch(WorkbenchError):
    """The exported graph does not give torch's detections; nothing was kept."""


def require_module(name: str, purpose: str):
    """Import ``onnx`` or ``onnxruntime``, or say how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise OnnxUnavailable(f"{purpose} needs the {name} package: {INSTALL}") from None


# ---- comparing two runtimes' detections ----------------------------------------------
@dataclass
class Comparison:
    """One image's torch detections against ONNX Runtime's."""

    image: str
    expected: int
    got: int
    min_iou: float | None = None
    max_score_diff: float = 0.0
    max_prob_diff: float = 0.0
    problems: list[str] = field(default_factory=list)


def compare_detections(
    image: str,
    expected: Sequence[Detection],
    got: Sequence[Detection],
    tolerance: Tolerance = TOLERANCE,
) -> Comparison:
    """Match each expected box (highest score first) to the unmatched box of the same
    label that overlaps it most, and list what falls outside ``tolerance``. NMS leaves
    no two boxes of one label overlapping by more than 0.5, so the match is unambiguous
    wherever it passes."""
    result = Comparison(image, len(expected), len(got))
    if len(expected) != len(got):
        result.problems.append(f"{len(expected)} boxes from torch, {len(got)} from ONNX Runtime")
    free = list(got)
    ious = []
    for e in sorted(expected, key=lambda d: -d.score):
        same_label = [g for g in free if g.label == e.label]
        box = (e.x1, e.y1, e.x2, e.y2)
        if not same_label:
            result.problems.append(f"no {e.label} box near {_box(box)} (score {e.score:.3f})")
            continue
        match = max(same_label, key=lambda g: _iou(box, g))
        free.remove(match)
        iou = _iou(box, match)
        ious.append(iou)
        score_diff = abs(e.score - match.score)
        prob_diff = max(
            (abs(p - match.probs.get(name, 0.0)) for name, p in e.probs.items()), default=0.0
        )
        result.max_score_diff = max(result.max_score_diff, score_diff)
        result.max_prob_diff = max(result.max_prob_diff, prob_diff)
        if iou < tolerance.min_iou:
            result.problems.append(f"{e.label} box {_box(box)}: IoU {iou:.3f} with ONNX's")
        if score_diff > tolerance.max_score_diff:
            result.problems.append(
                f"{e.label} box {_box(box)}: score {e.score:.4f} in torch, {match.score:.4f} in ONNX"
            )
        if prob_diff > tolerance.max_prob_diff:
            result.problems.append(
                f"{e.label} box {_box(box)}: probabilities differ by {prob_diff:.4f}"
            )
    result.min_iou = min(ious) if ious else None
    return result


def _iou(box: tuple[float, ...], d: Detection) -> float:
    other = (d.x1, d.y1, d.x2, d.y2)
    return 1.0 if other == box else iou_xyxy(box, other)  # equal slivers too


def _box(b) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in b) + ")"


# ---- the predictor ---------------------------------------------------------------------
class OnnxPredictor(LoadedVersion):
    """A version's verified ``model.onnx`` in an ONNX Runtime session on the CPU:
    ``predict(images)`` as ``Predictor.predict``. ``threads``: ONNX Runtime's intra-op
    threads (default: as many as torch uses, so both runtimes get the same cores).
    ``onnx_file``: run this graph instead, unchecked (the export's own check)."""

    runtime = "onnx"

    def __init__(
        self, model_dir: Path | str, threads: int | None = None, onnx_file: Path | None = None
    ):
        super().__init__(model_dir)
        ort = require_module("onnxruntime", "serving with --runtime onnx")
        if onnx_file is None:
            onnx_file = self.model_dir / ONNX_FILE
            _require_verified(self.version, onnx_file, self.model_dir / RECORD_FILE)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are about graph fusions
        try:
            self.session = ort.InferenceSession(
                str(onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own types for a broken file
            raise NoOnnxModel(
                f"ONNX Runtime cannot load {onnx_file} ({type(exc).__name__}: "
                f"{str(exc)[:200]}): run `wb models export {self.version}` again"
            ) from None

    def predict(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        out = []
        for image in images:
            photo = image_tensor(image)
            resized = model_input(photo, self.config.image_size)
            boxes, labels, scores, probs = self.session.run(list(OUTPUTS), {INPUT: resized.numpy()})
            # back to the photo's pixels, as torchvision's resize_boxes does
            (h, w), (rh, rw) = photo.shape[-2:], resized.shape[-2:]
            ratios = np.array([w / rw, h / rh, w / rw, h / rh], dtype=np.float32)
            out.append(self.detections(boxes * ratios, labels, scores, probs))
        return out


def model_input(photo: torch.Tensor, image_size: int) -> torch.Tensor:
    """``photo`` resized as the detector's own transform resizes it in evaluation
    (longer side ``image_size``; ``backbones._size_options``), by the same function."""
    return _resize_image_and_masks(photo, image_size, image_size)[0]


@contextmanager
def _resize_left_out():
    """While tracing: the transform's resize is the identity (``model_input`` does it)."""
    real = rcnn_transform._resize_image_and_masks
    rcnn_transform._resize_image_and_masks = lambda image, *args, **kw: (image, kw.get("target"))
    try:
        yield
    finally:
        rcnn_transform._resize_image_and_masks = real


def _require_verified(version: str, path: Path, record_path: Path) -> None:
    if not path.is_file():
        raise NoOnnxModel(
            f"model {version} has no {ONNX_FILE}: run `wb models export {version}` first"
        )
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        raise NoOnnxModel(
            f"{path} has no verification record ({RECORD_FILE}): run "
            f"`wb models export {version}` to export and check it"
        ) from None
    if sha256_file(path) != record.get("sha256"):
        raise NoOnnxModel(
            f"{path} is not the file `wb models export` checked (its sha256 differs): run "
            f"`wb models export {version}` again"
        )


# ---- the export ------------------------------------------------------------------------
@dataclass
class ExportReport:
    version: str
    path: Path
    format: str
    opset: int
    size_bytes: int
    seconds: float
    images: int
    val_images: int
    boxes: int
    min_iou: float | None
    max_score_diff: float
    max_prob_diff: float
    tolerance: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


class _OneImage(torch.nn.Module):
    """The detector as the graph takes it: one image tensor in, four tensors out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        r = self.model([image])[0]
        return tuple(r[k] for k in OUTPUTS)


def trace_to_onnx(model: torch.nn.Module, path: Path, opset: int, image: Image.Image) -> None:
    """Write ``model`` (eval mode, on the CPU) as an ONNX graph for images already at its
    input size (``model_input``), traced on ``image``, with the height and width and the
    number of detections left free."""
    detections = {0: "detections"}
    size = int(model.transform.max_size)
    with torch.no_grad(), warnings.catch_warnings(), _resize_left_out():
        # TracerWarnings: shapes read as Python numbers; what that fixes in the graph is
        # what the verification against torch, on images of other sizes, is for
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _OneImage(model).eval(),
            (model_input(image_tensor(image), size),),
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_axes={
                INPUT: {1: "height", 2: "width"},
                **{name: detections for name in OUTPUTS},
            },
        )


def verification_images(registry: Registry, mv: ModelVersion) -> list[tuple[str, Image.Image]]:
    """(name, photo) pairs: up to ``VAL_IMAGES`` readable images of the version's val
    split, then two synthetic photos, one landscape and one portrait, larger than the
    model's input (they check the graph's free height and width, and the resize)."""
    from .synthetic import draw_image

    picked: list[tuple[str, Image.Image]] = []
    try:
        ids = json.loads((mv.path / DATA).read_text()).get("image_ids", {}).get("val", [])
    except (OSError, ValueError):
        ids = []
    for rec in registry.catalog.images(ids=list(ids)) if ids else []:
        if len(picked) == VAL_IMAGES:
            break
        try:
            picked.append((f"val image {rec.id}", open_image(rec.path)))
        except UnreadableImage:
            continue
    size = int(mv.config.get("train", {}).get("image_size") or 320)
    rng = np.random.default_rng(0)
    # both larger than the input, resized by 1.25 (where ONNX Runtime's own Resize went
    # wrong) and by 2
    shapes = {"synthetic landscape": (size * 5 // 4, size * 15 // 16)}
    shapes["synthetic portrait"] = (size * 3 // 2, size * 2)
    for name, shape in shapes.items():
        square, _ = draw_image(rng, list(mv.classes), size, 2)
        picked.append((name, square.resize(shape)))
    return picked


def export_onnx(
    registry: Registry,
    version: str | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: Tolerance = TOLERANCE,
) -> ExportReport:
    """Export ``version`` (default: the promoted one) to ``model.onnx`` in its folder,
    check it against torch on ``verification_images`` and keep it only when it matches
    (``OnnxMismatch`` otherwise, and nothing is written)."""
    onnx = require_module("onnx", "ONNX export")
    require_module("onnxruntime", "checking the ONNX export")
    if not OPSETS[0] <= opset <= OPSETS[1]:
        raise WorkbenchError(f"opset {opset} is not one torch exports: use {OPSETS[0]}-{OPSETS[1]}")
    mv = registry.resolve(version)
    started = time.perf_counter()
    reference = Predictor(mv.path, device="cpu", batch_size=1)
    images = verification_images(registry, mv)
    expected = reference.predict([im for _, im in images])
    checked: list[Comparison] = []

    def write(tmp: Path) -> None:
        trace_to_onnx(reference.model, tmp, opset, images[-1][1])
        onnx.checker.check_model(str(tmp))
        got = OnnxPredictor(mv.path, onnx_file=tmp).predict([im for _, im in images])
        for (name, _), e, g in zip(images, expected, got):
            checked.append(compare_detections(name, e, g, tolerance))
        wrong = [c for c in checked if c.problems]
        if wrong:
            first = wrong[0]
            more = sum(len(c.problems) for c in wrong) - 1
            raise OnnxMismatch(
                f"the ONNX graph of {mv.version} does not give torch's detections on "
                f"{len(wrong)} of {len(checked)} images ({first.image}: {first.problems[0]}"
                + (f"; {more} more differences" if more else "")
                + f"); tolerance: {tolerance.describe()}. {ONNX_FILE} was not kept."
            )

    path = registry.add_file(
        mv.version, ONNX_FILE, write, size_hint=(mv.path / WEIGHTS).stat().st_size
    )
    ious = [c.min_iou for c in checked if c.min_iou is not None]
    report = ExportReport(
        version=mv.version,
        path=path,
        format="onnx",
        opset=opset,
        size_bytes=path.stat().st_size,
        seconds=round(time.perf_counter() - started, 1),
        images=len(checked),
        val_images=sum(name.startswith("val") for name, _ in images),
        boxes=sum(c.expected for c in checked),
        min_iou=min(ious) if ious else None,
        max_score_diff=max((c.max_score_diff for c in checked), default=0.0),
        max_prob_diff=max((c.max_prob_diff for c in checked), default=0.0),
        tolerance=asdict(tolerance),
    )
    record = {
        **report.to_dict(),
        "sha256": sha256_file(path),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": importlib.import_module("onnxruntime").__version__,
    }
    registry.add_file(
        mv.version, RECORD_FILE, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n")
    )
    return report
