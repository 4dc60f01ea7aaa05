"""Class activation maps for a detector's boxes, through the grad-cam package
(jacobgil/pytorch-grad-cam, MIT): its CAM classes, its ``FasterRCNNBoxScoreTarget`` and
its ``show_cam_on_image``. Nothing here computes CAM maths itself.

Per image, ``Explainer.explain(image)`` returns the model's boxes at or above
``min_score`` with one heatmap each, of the image's size, values in [0, 1]:

- gradient methods (``gradcam`` ...) explain each box separately: the target is that box's
  score (``FasterRCNNBoxScoreTarget``: a model box of the same class with IoU > 0.5 scores
  its IoU plus its class score), one forward and backward per box (batched);
- ``eigencam`` is gradient-free: the first principal component of the layer's
  activations, so it does not depend on the box. One forward pass gives the boxes and the
  map, and every box of the image shares that map (its inside-box share still differs).

The target layer is the backbone body's last layer by default
(``detection.backbones.default_cam_layer``), as the study took it. torchvision pads the
resized image to a multiple of 32 before the backbone; the activations are cropped to the
image's part (the library's ``reshape_transform`` hook), so a map lies on the photo, not
on photo plus padding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from ..errors import WorkbenchError, check_choice
from ..labelstudio.tasks import DISPLAY_MIN_SCORE

log = logging.getLogger(__name__)

#: `--method` name -> (class in pytorch_grad_cam, uses gradients). These are the
#: library's CAMs that work on a Faster R-CNN with a box score target (checked on every
#: registered backbone); ScoreCAM and AblationCAM also exist but cost one forward pass
#: per channel.
METHODS: dict[str, tuple[str, bool]] = {
    "eigencam": ("EigenCAM", False),
    "gradcam": ("GradCAM", True),
    "gradcam++": ("GradCAMPlusPlus", True),
    "xgradcam": ("XGradCAM", True),
    "hirescam": ("HiResCAM", True),
    "layercam": ("LayerCAM", True),
    "eigengradcam": ("EigenGradCAM", True),
}
DEFAULT_METHOD = "eigencam"  # gradient-free: the robust and fast choice on detectors
BOXES_PER_PASS = 4  # gradient methods: boxes explained in one batched forward/backward
INSTALL_HINT = "pip install --no-deps grad-cam==1.5.5 ttach"


def grad_cam_package():
    """The ``pytorch_grad_cam`` module, or a WorkbenchError that says how to install it."""
    try:
        import pytorch_grad_cam
    except ImportError as exc:
        raise WorkbenchError(
            f"wb explain needs the grad-cam package ({exc}); install with `{INSTALL_HINT}` "
            "(without --no-deps it would also install opencv-python, which clashes with the "
            "opencv-python-headless already here)"
        ) from None
    return pytorch_grad_cam


@dataclass
class ExplainedBox:
    """One detection and its heatmap (H x W float32 in [0, 1], the image's size)."""

    label: str
    score: float
    box: tuple[float, float, float, float]  # pixel x1, y1, x2, y2
    heatmap: np.ndarray


def valid_layers(model: torch.nn.Module) -> list[str]:
    """Layers a map can be taken from: the backbone body's stages (and anything inside)."""
    return [f"backbone.body.{name}" for name, _ in model.backbone.body.named_children()]


def resolve_layer(model: torch.nn.Module, backbone: str, layer: str | None) -> str:
    """``layer``, or the backbone's last layer; an unknown name lists the valid ones."""
    from ..detection.backbones import default_cam_layer

    name = layer or default_cam_layer(backbone)
    inside_body = name.startswith("backbone.body.")
    try:
        model.get_submodule(name)
        found = True
    except AttributeError:
        found = False
    if not (found and inside_body):
        raise WorkbenchError(
            f"no layer '{name}' to take maps from in this {backbone} model; layers: "
            f"{', '.join(valid_layers(model))} (or a module inside one of them, e.g. "
            f"{valid_layers(model)[-1]}.0); the default is its last layer, "
            f"{default_cam_layer(backbone)}"
        )
    return name


class _CropToImage:
    """``reshape_transform`` for the library: keep the part of a feature map that covers
    the resized image, not torchvision's padding to a multiple of 32."""

    def __init__(self, image_hw: tuple[int, int], padded_hw: tuple[int, int]):
        self.fraction = (image_hw[0] / padded_hw[0], image_hw[1] / padded_hw[1])

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        h, w = t.shape[-2:]
        rows = max(1, round(h * self.fraction[0]))
        cols = max(1, round(w * self.fraction[1]))
        return t[..., :rows, :cols]


class Explainer:
    """A loaded model plus a CAM method and layer; ``explain(image)`` per photo."""

    def __init__(
        self,
        predictor,
        method: str = DEFAULT_METHOD,
        layer: str | None = None,
        min_score: float = DISPLAY_MIN_SCORE,
    ):
        self.package = grad_cam_package()
        self.method = check_choice("method", method, list(METHODS))
        self.predictor = predictor
        self.model = predictor.model.eval()
        self.layer = resolve_layer(self.model, predictor.config.backbone, layer)
        self.min_score = min_score
        class_name, self.uses_gradients = METHODS[self.method]
        self._cam_class = getattr(self.package, class_name)
        self._target_layer = self.model.get_submodule(self.layer)
        # Gradient methods need the layer's output to carry gradients, nothing below it:
        # with only the layer's own weights requiring them, backward stops at the layer.
        # A layer without weights gets them through the input instead.
        self.model.requires_grad_(False)
        self._grad_via_input = self.uses_gradients and not any(
            True for _ in self._target_layer.parameters()
        )
        if self.uses_gradients and not self._grad_via_input:
            self._target_layer.requires_grad_(True)

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    def _crop(self, x: torch.Tensor) -> _CropToImage:
        with torch.no_grad():
            images, _ = self.model.transform(list(x))
        return _CropToImage(tuple(images.image_sizes[0]), tuple(images.tensors.shape[-2:]))

    def _boxes(self, output: dict) -> list[tuple[str, float, tuple[float, ...], int]]:
        out = []
        for box, label, score in zip(
            output["boxes"].detach().float().cpu().tolist(),
            output["labels"].tolist(),
            output["scores"].detach().float().cpu().tolist(),
        ):
            if score >= self.min_score:
                name = self.predictor.classes[int(label) - 1]
                out.append((name, float(score), tuple(round(v, 2) for v in box), int(label)))
        return out

    def _cam(self, crop: _CropToImage):
        # not as a context manager: the library's __exit__ swallows IndexErrors
        return self._cam_class(self.model, [self._target_layer], reshape_transform=crop)

    def explain(self, image: Image.Image) -> list[ExplainedBox]:
        """The image's boxes at or above ``min_score``, each with its heatmap."""
        return list(self.iter_explain(image))

    def iter_explain(self, image: Image.Image) -> Iterator[ExplainedBox]:
        """``explain`` box by box: a gradient method's maps (each the photo's size) are
        made ``BOXES_PER_PASS`` at a time, so a caller that draws and drops them holds a
        few, not one per box."""
        from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

        x = TF.to_tensor(image.convert("RGB"))[None].to(self.device)
        crop = self._crop(x)
        if not self.uses_gradients:
            cam = self._cam(crop)
            try:
                with torch.no_grad():
                    # targets unused by a gradient-free CAM, but the library needs a list
                    maps = cam(x, targets=[FasterRCNNBoxScoreTarget([], np.zeros((0, 4)))])
                boxes = self._boxes(cam.outputs[0])
            finally:
                cam.activations_and_grads.release()
            heat = np.clip(maps[0], 0.0, 1.0)
            for name, score, box, _ in boxes:
                yield ExplainedBox(name, score, box, heat)
            return

        with torch.no_grad():
            boxes = self._boxes(self.model(list(x))[0])
        cam = self._cam(crop)
        try:
            for start in range(0, len(boxes), BOXES_PER_PASS):
                chunk = boxes[start : start + BOXES_PER_PASS]
                batch = x.expand(len(chunk), -1, -1, -1).clone()
                batch.requires_grad_(self._grad_via_input)
                targets = [
                    FasterRCNNBoxScoreTarget([lbl], np.array([b], dtype=np.float32))
                    for _, _, b, lbl in chunk
                ]
                maps = cam(batch, targets=targets)
                for (name, score, box, _), heat in zip(chunk, maps):
                    yield ExplainedBox(name, score, box, np.clip(heat, 0.0, 1.0))
                del maps
        finally:
            cam.activations_and_grads.release()
